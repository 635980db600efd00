"""Fixtures of the server tests: one in-process server on free ports of 127.0.0.1.

``server`` serves model ``tiny`` (version 1: features; version 2: features +
conv1; labels stable -> 1, canary -> 2, policy all) and ``rgb`` (3 channels),
with batching and the small limits of :mod:`server_support`. It is started
once for every test module of this directory that asks for it.
"""
from __future__ import annotations

import grpc
import pytest

from keras_ssl.export import export_encoder
from keras_ssl.server.app import start_server
from keras_ssl.server.model_config import BatchingConfig, ModelConfig
from keras_ssl.server.validation import Limits
from server_support import MAX_BODY, MAX_PIXELS
from support import tiny_encoder


@pytest.fixture(scope="package")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    enc = tiny_encoder()
    export_encoder(enc, base, "tiny")                       # version 1: features only
    export_encoder(enc, base, "tiny", taps=("conv1",))      # version 2: features + conv1
    enc3 = tiny_encoder(seed=3, channels=3)
    export_encoder(enc3, base, "rgb")
    models = [ModelConfig("tiny", str(base / "tiny"), policy="all", labels={"stable": 1, "canary": 2}),
              ModelConfig("rgb", str(base / "rgb"))]
    h = start_server(models, batching=BatchingConfig(max_batch_size=8, batch_timeout_micros=20000),
                     poll_wait_seconds=0, max_body_bytes=MAX_BODY,
                     limits=Limits(max_image_pixels=MAX_PIXELS, max_tensor_bytes=4 * MAX_BODY))
    h.enc = enc
    yield h
    h.stop()


@pytest.fixture(scope="package")
def channel(server):
    ch = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    yield ch
    ch.close()
