"""Decompression bombs sent to ``image_bytes`` through the server (REST and gRPC).

The server's own header check (``--max_image_pixels``) is switched off here
(a limit of 2**62), so what refuses the bombs is the guard inside the
exported graph, the one TF Serving runs too: 400 / INVALID_ARGUMENT with the
declared size and the limit, no allocation, and the next request is served.
Memory is read from this process's /proc/self/status (the server runs in it).
"""
from __future__ import annotations

import struct
import zlib

import grpc
import numpy as np
import pytest
import tensorflow as tf

from keras_ssl.export import export_encoder
from keras_ssl.export.contract import MAX_IMAGE_PIXELS
from keras_ssl.server.app import start_server
from keras_ssl.server.model_config import BatchingConfig, ModelConfig
from keras_ssl.server.validation import Limits
from server_support import MAX_BODY, b64, grpc_predict, rest
from support import images, png, tiny_encoder

LIMIT_MSG = f"more than the limit of {MAX_IMAGE_PIXELS}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(width: int, height: int) -> bytes:
    """A valid 4x4 PNG whose IHDR is patched to ``width`` x ``height`` (CRC recomputed)."""
    base = tf.io.encode_png(np.zeros((4, 4, 1), np.uint8)).numpy()
    return base[:8] + _chunk(b"IHDR", struct.pack(">II", width, height) + base[24:29]) + base[33:]


def _png_zeros(width: int, height: int) -> bytes:
    """A genuine grey PNG of zeros: 16000 x 16000 is 250 KB."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _gif_small_screen_huge_frame() -> bytes:
    """A GIF whose logical screen says 10x10 and whose frame says 30000x30000."""
    return (b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0x80, 0, 0) + bytes(6)
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, 30000, 30000, 0) + b"\x02\x02\x44\x01\x00\x3b")


def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM"))


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("bomb_models")
    export_encoder(tiny_encoder(), base, "tiny")
    h = start_server([ModelConfig("tiny", str(base / "tiny"))],
                     batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=20000),
                     poll_wait_seconds=0, max_body_bytes=MAX_BODY,
                     limits=Limits(max_image_pixels=2 ** 62, max_tensor_bytes=4 * MAX_BODY))
    yield h
    h.stop()


def _rest_predict(server, data: bytes):
    return rest(server, "POST", "/v1/models/tiny:predict",
                {"signature_name": "image_bytes", "instances": [b64(data)]})


def test_rest_bomb_is_400_and_the_server_keeps_serving(open_server):
    good = png(images(1)[0])
    s, body = _rest_predict(open_server, good)
    assert s == 200 and len(body["predictions"][0]) == 8
    before = _vm_hwm_mb()
    genuine = _png_zeros(16000, 16000)  # decoding it: +1.5 GB, 21 s
    for data, dims in ((_png_declaring(30000, 30000), "30000x30000"),
                       (_gif_small_screen_huge_frame(), "30000x30000"),
                       (genuine, "16000x16000")):
        s, body = _rest_predict(open_server, data)
        assert s == 400, body
        assert f"image declares {dims} pixels, {LIMIT_MSG}" in body["error"], body
    growth = _vm_hwm_mb() - before
    print(f"peak RSS growth over the three bombs: {growth:.1f} MB")
    assert growth < 100
    s, body = _rest_predict(open_server, good)
    assert s == 200 and len(body["predictions"][0]) == 8
    # other refusals of the guard reach the client as 400s too
    for data, needle in ((b"hello", "unknown image format"), (b"\x89PNG\r\n\x1a\nbroken", "PNG header")):
        s, body = _rest_predict(open_server, data)
        assert s == 400 and needle in body["error"], body


def test_grpc_bomb_is_invalid_argument_and_the_server_keeps_serving(open_server):
    channel = grpc.insecure_channel(f"127.0.0.1:{open_server.grpc_port}")
    try:
        def predict(data):
            return grpc_predict(channel, "tiny", {"image_bytes": np.array([data], dtype=object)},
                                signature="image_bytes")
        with pytest.raises(grpc.RpcError) as e:
            predict(_png_declaring(30000, 30000))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert f"image declares 30000x30000 pixels, {LIMIT_MSG}" in e.value.details()
        resp = predict(png(images(1)[0]))
        assert tf.make_ndarray(resp.outputs["features"]).shape == (1, 8)
    finally:
        channel.close()
