"""The ``image_bytes`` signature refuses decompression bombs before decoding.

A small PNG / JPEG / GIF / BMP / WebP can declare 30000 x 30000 pixels (or,
for a GIF, a small logical screen and a huge frame) and force a multi-GB
allocation at decode. The guard reads the declared size from the header with
TF ops inside the graph (so TF Serving enforces it too) and fails with
InvalidArgumentError above ``MAX_IMAGE_PIXELS``; valid images decode as before.
"""
from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import support
from keras_ssl.export import export_encoder
from keras_ssl.export import image_header as hdr
from keras_ssl.export import signatures as sig
from keras_ssl.export.contract import MAX_IMAGE_PIXELS
from support import images, png

LIMIT_MSG = f"more than the limit of {MAX_IMAGE_PIXELS}"


# -- crafted files -------------------------------------------------------------
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int) -> bytes:
    """A valid 4x4 PNG whose IHDR is patched to ``width`` x ``height`` (CRC recomputed)."""
    base = tf.io.encode_png(np.zeros((4, 4, 1), np.uint8)).numpy()
    assert base[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + base[24:29]
    return base[:8] + _chunk(b"IHDR", ihdr) + base[33:]


def png_zeros(width: int, height: int) -> bytes:
    """A genuine, fully decodable 8-bit grey PNG of zeros (deflate: ~1000:1)."""
    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _lzw_literal(pixels) -> bytes:
    """GIF LZW data (code size 2) of palette indices 0-3, uncompressed: a clear
    code before every 2 pixels keeps the codes 3 bits wide."""
    codes = []
    for i in range(0, len(pixels), 2):
        codes += [4, *pixels[i:i + 2]]
    codes.append(5)
    acc = nbits = 0
    out = bytearray()
    for c in codes:
        acc |= c << nbits
        nbits += 3
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    return bytes(out + (bytes([acc]) if nbits else b""))


def gif(frames, screen=None) -> bytes:
    """A GIF89a of ``frames`` [(w, h, pixels or None)]: None declares the frame
    with 4 pixels of data only (a bomb the decoder would allocate for first)."""
    sw, sh = screen or (max(f[0] for f in frames), max(f[1] for f in frames))
    palette = bytes([0, 0, 0, 255, 255, 255, 128, 128, 128, 255, 0, 0])
    out = b"GIF89a" + struct.pack("<HHBBB", sw, sh, 0x81, 0, 0) + palette
    for w, h, px in frames:
        out += b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control extension
        out += b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02"
        data = _lzw_literal(px if px is not None else [0] * 4)
        out += b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255))
        out += b"\x00"
    return out + b"\x3b"


def bmp_declaring(width: int, height: int) -> bytes:
    """A 54-byte BMP header (24 bpp) declaring ``width`` x ``height``, no pixels."""
    row = ((width * 24 + 31) // 32) * 4
    size = row * abs(height)
    return (b"BM" + struct.pack("<IHHI", 54 + size, 0, 0, 54)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, size, 2835, 2835, 0, 0))


def jpeg_declaring(width: int, height: int) -> bytes:
    """A valid 8x8 JPEG whose start-of-frame is patched to ``width`` x ``height``."""
    b = bytearray(tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy())
    i = 2
    while True:
        marker, seg = b[i + 1], struct.unpack(">H", b[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            b[i + 5:i + 9] = struct.pack(">HH", height, width)
            return bytes(b)
        i += 2 + seg


def webp_declaring(width: int, height: int) -> bytes:
    """An extended-format (VP8X) WebP header declaring a ``width`` x ``height`` canvas."""
    return (b"RIFF\x1e\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x00\x00\x00\x00"
            + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))


def pil(fmt: str, arr: np.ndarray, **kw) -> bytes:
    b = io.BytesIO()
    Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(b, fmt, **kw)
    return b.getvalue()


BOMBS = {
    "png": (png_declaring(30000, 30000), "30000x30000"),
    "png_uint32_max": (png_declaring(2 ** 32 - 1, 2 ** 32 - 1), "4294967295x4294967295"),  # no overflow
    "jpeg": (jpeg_declaring(30000, 30000), "30000x30000"),
    "gif_screen": (gif([(1, 1, [1])], screen=(30000, 30000)), "30000x30000"),
    "gif_frame": (gif([(30000, 30000, None)], screen=(10, 10)), "30000x30000"),
    "gif_later_frame": (gif([(4, 4, [1] * 16), (30000, 30000, None)], screen=(4, 4)), "30000x30000"),
    "bmp": (bmp_declaring(30000, 30000), "30000x30000"),
    "bmp_top_down": (bmp_declaring(30000, -30000), "30000x30000"),
    "webp": (webp_declaring(16000, 16000), "16000x16000"),
}

_decode = tf.function(lambda data: sig.decode_image_bytes(data, 28, 28, 1))


def _refusal(data, fn=None) -> str:
    with pytest.raises(tf.errors.InvalidArgumentError) as e:
        (fn or _decode)(tf.constant(data))
    return e.value.message


# -- the guard on its own --------------------------------------------------------
@pytest.mark.parametrize("case", sorted(BOMBS))
def test_bomb_is_refused_with_the_declared_size(case):
    data, dims = BOMBS[case]
    assert len(data) < 1000
    msg = _refusal(data)
    assert f"image declares {dims} pixels, {LIMIT_MSG}" in msg, msg


def test_declared_sizes_are_read_from_the_headers():
    f = tf.function(hdr.declared_image_size)
    for data, fmt, w, h in [(png_declaring(30000, 20000), "PNG", 30000, 20000),
                            (jpeg_declaring(1234, 567), "JPEG", 1234, 567),
                            (bmp_declaring(300, -200), "BMP", 300, 200),
                            (webp_declaring(700, 900), "WebP", 700, 900),
                            (gif([(5, 6, [0] * 30), (9, 2, [0] * 18)], screen=(3, 3)), "GIF", 9, 6)]:
        d = {k: v.numpy() for k, v in f(tf.constant(data)).items()}
        assert (hdr.IMAGE_FORMATS[d["format"]], d["width"], d["height"], d["problem"]) == (fmt, w, h, b""), d


def test_pixel_predicate_at_the_boundary():
    ok = lambda w, h: bool(hdr.pixels_within_limit(w, h).numpy())  # noqa: E731
    assert MAX_IMAGE_PIXELS == 2048 * 2048
    assert ok(2048, 2048) and ok(MAX_IMAGE_PIXELS, 1) and ok(1, MAX_IMAGE_PIXELS) and ok(28, 28)
    assert not ok(2049, 2048) and not ok(2048, 2049) and not ok(MAX_IMAGE_PIXELS + 1, 1)
    # int64 with capped factors: products that overflow int32 or int64 are not "small"
    assert not ok(65536, 65536) and not ok(2 ** 32 - 1, 2 ** 32 - 1) and not ok(2 ** 62, 4)
    assert ok(10, 10) and not hdr.pixels_within_limit(10, 10, max_pixels=99).numpy()


def test_genuine_images_at_the_limit_boundary():
    """Real, decodable PNGs of zeros: exactly 2048 x 2048 decodes, one row more is refused."""
    at_limit = png_zeros(2048, 2048)
    out = _decode(tf.constant(at_limit)).numpy()
    assert out.shape == (28, 28, 1) and not out.any()
    over = png_zeros(2048, 2049)
    assert len(over) < 5000  # a 5 KB file of 4.2 M pixels
    assert f"image declares 2048x2049 pixels, {LIMIT_MSG}" in _refusal(over)


def test_gif_canvas_and_frames_are_checked_not_just_the_screen():
    # TF's GIF decoder sizes its canvas by the largest frame, whatever the
    # logical screen says, and decodes every frame.
    wide = gif([(4, 4, [1] * 16), (6, 5, [2] * 30)], screen=(4, 4))
    assert tf.io.decode_image(wide, expand_animations=False).shape == (5, 6, 3)
    small = tf.function(lambda d: sig.decode_image_bytes(d, 8, 8, 3, max_pixels=29))
    assert "image declares 6x5 pixels, more than the limit of 29" in _refusal(wide, small)
    # a genuine GIF (PIL's LZW) of 80x80 whose screen claims 10x10: decodes to 80x80
    real = bytearray(pil("GIF", np.zeros((80, 80, 3), np.uint8)))
    real[6:10] = struct.pack("<HH", 10, 10)
    assert tf.io.decode_image(bytes(real), expand_animations=False).shape == (80, 80, 3)
    small = tf.function(lambda d: sig.decode_image_bytes(d, 8, 8, 3, max_pixels=100))
    assert "image declares 80x80 pixels, more than the limit of 100" in _refusal(bytes(real), small)
    # three frames, each within the limit, together over it
    frames = gif([(2000, 1500, None)] * 3)
    assert "GIF declares 3 frames of 9000000 pixels in all (every frame is decoded), " + LIMIT_MSG \
        in _refusal(frames)


def test_gif_walk_is_bounded():
    """Thousands of empty extensions are refused, not walked for minutes."""
    hostile = b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + b"\x21\xfe\x00" * (hdr.GIF_MAX_STEPS + 10) + b"\x3b"
    assert f"GIF too long to check before decoding: more than {hdr.GIF_MAX_STEPS} steps" in _refusal(hostile)
    # one step fewer than the cap is walked to the trailer (then decoded: it has no frame)
    fits = b"GIF89a\x01\x00\x01\x00\x00\x00\x00" + b"\x21\xfe\x00" * (hdr.GIF_MAX_STEPS - 1) + b"\x3b"
    d = tf.function(hdr.declared_image_size)(tf.constant(fits))
    assert d["problem"].numpy() == b"" and d["frames"].numpy() == 0


@pytest.mark.parametrize("data, needle", [
    (b"", "unknown image format (0 bytes)"),
    (b"hello", "unknown image format (5 bytes): send PNG, JPEG, GIF, BMP or WebP"),
    (b"\x89PNG\r\n\x1a\nbroken", "truncated PNG header: 14 bytes, at least 24 needed"),
    (b"\x89PNG\r\n\x1a\n" + bytes(8) + b"IEND" + bytes(12), "the first chunk is not IHDR"),
    (b"GIF89a\x10\x00", "truncated GIF header: 8 bytes, at least 13 needed"),
    (b"BM" + bytes(10), "truncated BMP header: 12 bytes, at least 26 needed"),
    (b"RIFF\x00\x00\x00\x00WEBPVP8L\x00", "truncated WebP header: 17 bytes, at least 25 needed"),
    (b"RIFF\x00\x00\x00\x00WEBPABCD" + bytes(20), "no VP8, VP8L or VP8X chunk"),
    (b"\xff\x0a" + bytes(30), "JPEG XL images are not accepted"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n" + bytes(30), "JPEG XL images are not accepted"),
    (b"\xff\xd8\xff" + b"x" * 20, "JPEG"),  # extract_jpeg_shape's own refusal
])
def test_unknown_and_truncated_inputs_are_refused_clearly(data, needle):
    assert needle in _refusal(data)


# -- valid images are untouched -----------------------------------------------------
def _reference(data, channels):
    """What the signature's decoding did before the guard: decode, convert, resize
    (eagerly: equal to the graph's result within float rounding)."""
    img = tf.io.decode_image(data, channels=0, dtype=tf.float32, expand_animations=False)
    n = img.shape[-1]
    if channels == 1:
        img = tf.image.rgb_to_grayscale(img[..., :3]) if n >= 3 else img[..., :1]
    else:
        img = img[..., :3] if n >= 3 else tf.tile(img[..., :1], [1, 1, 3])
    if img.shape[:2] != (28, 28):
        img = tf.image.resize(img, [28, 28], method="bilinear", antialias=True)
    return tf.clip_by_value(img, 0.0, 1.0).numpy()


@pytest.mark.parametrize("channels", [1, 3])
def test_valid_images_decode_exactly_as_before(channels):
    fn = tf.function(lambda d: sig.decode_image_bytes(d, 28, 28, channels))
    rng = np.random.default_rng(0)
    n = 0
    for size in (28, 40):
        for c in (1, 3):
            a = rng.integers(0, 256, (size, size, c), dtype=np.uint8)
            for data in (png(a / 255.0), tf.io.encode_jpeg(a).numpy(), pil("GIF", a), pil("BMP", a)):
                np.testing.assert_allclose(fn(tf.constant(data)).numpy(), _reference(data, channels),
                                           rtol=0, atol=1e-6)
                n += 1
    assert n == 16
    # a grey PNG at the model's size: exactly the decoder's pixels, which are the PNG's
    x = images(1)[0]
    expect = tf.io.decode_image(png(x), dtype=tf.float32).numpy()
    np.testing.assert_array_equal(fn(tf.constant(png(x))).numpy()[..., :1], expect)
    np.testing.assert_allclose(expect, np.round(x * 255) / 255, rtol=0, atol=1e-7)


# -- the exported SavedModel ----------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = export_encoder(support.tiny_encoder(), tmp_path_factory.mktemp("bomb"), "tiny")
    return path, tf.saved_model.load(str(path)).signatures["image_bytes"]


def _vm_hwm_mb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmHWM"))


def test_exported_signature_refuses_bombs_without_allocating(exported):
    path, fn = exported
    good = tf.constant([png(images(1)[0])])
    call = lambda data: fn(image_bytes=tf.reshape(data, [1]))  # noqa: E731
    assert fn(image_bytes=good)["features"].shape == (1, 8)
    before = _vm_hwm_mb()
    for case, (data, dims) in BOMBS.items():
        msg = _refusal(data, call)
        assert f"image declares {dims} pixels, {LIMIT_MSG}" in msg, (case, msg)
    # a genuine 16000 x 16000 PNG of 250 KB: decoding it took +1.5 GB and 21 s
    genuine = png_zeros(16000, 16000)
    assert len(genuine) < 300_000
    assert f"image declares 16000x16000 pixels, {LIMIT_MSG}" in _refusal(genuine, call)
    assert _vm_hwm_mb() - before < 100
    # a bomb in a batch fails the batch; the next request is served
    with pytest.raises(tf.errors.InvalidArgumentError, match="image declares"):
        fn(image_bytes=tf.constant([png(images(1)[0]), BOMBS["png"][0]]))
    assert fn(image_bytes=good)["features"].shape == (1, 8)


def test_preprocessing_json_records_the_limit(exported):
    path, _ = exported
    c = json.loads((path / "assets.extra/preprocessing.json").read_text())
    spec = c["signatures"]["image_bytes"]
    assert spec["inputs"]["image_bytes"]["max_pixels"] == MAX_IMAGE_PIXELS == 4_194_304
    assert str(MAX_IMAGE_PIXELS) in spec["preprocessing"][0]
