"""Dynamic batching of keras_ssl.serve: concurrent requests merged, a bad one isolated."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from keras_ssl.server.batching import Batcher
from keras_ssl.server.errors import ServingError
from keras_ssl.server.model_config import BatchingConfig
from server_support import grpc_predict, rest
from support import images


def test_concurrent_requests_are_batched(server, channel):
    import dataclasses

    lv = server.manager.resolve("tiny", 1)
    batcher = lv.batchers["serving_default"]
    before = batcher.batches_run
    saved_cfg = batcher.cfg  # a wide window so a loaded CI machine still merges requests
    batcher.cfg = dataclasses.replace(saved_cfg, batch_timeout_micros=300000)
    xs = [images(1, seed=s) for s in range(16)]

    def one(i):
        if i % 2:
            r = grpc_predict(channel, "tiny", {"images": xs[i]}, version=1)
            return tf.make_ndarray(r.outputs["features"])
        s, body = rest(server, "POST", "/v1/models/tiny/versions/1:predict", {"instances": xs[i].tolist()})
        assert s == 200
        return np.array(body["predictions"])

    try:
        with ThreadPoolExecutor(16) as pool:
            outs = list(pool.map(one, range(16)))
    finally:
        batcher.cfg = saved_cfg
    for x, o in zip(xs, outs):
        np.testing.assert_allclose(o, server.enc(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
    assert batcher.batches_run > before
    assert batcher.max_batch_seen > 1


def test_batcher_merges_and_isolates_bad_requests():
    calls = []

    def run(inputs):
        x = inputs["x"]
        calls.append(len(x))
        if np.any(x < 0):
            raise ServingError("INVALID_ARGUMENT", "negative value")
        return {"y": x * 2}

    b = Batcher(run, BatchingConfig(max_batch_size=8, batch_timeout_micros=3000000, num_batch_threads=1))
    vals = [np.array([[float(i)]]) for i in range(8)]
    vals[3] = np.array([[-1.0]])

    def submit(v):
        try:
            return b.submit({"x": v}, 1)["y"]
        except ServingError as e:
            return e

    with ThreadPoolExecutor(8) as pool:
        res = list(pool.map(submit, vals))
    b.stop()
    assert calls[0] == 8  # one merged batch of 8 ...
    assert isinstance(res[3], ServingError)  # ... only the bad request fails
    for i, r in enumerate(res):
        if i != 3:
            np.testing.assert_array_equal(r, vals[i] * 2)
    # allowed_batch_sizes pads; oversized requests run alone
    b = Batcher(lambda inp: {"y": inp["x"]}, BatchingConfig(
        max_batch_size=4, batch_timeout_micros=1000, allowed_batch_sizes=(2, 4)))
    assert b.submit({"x": np.ones((3, 1))}, 3)["y"].shape == (3, 1)
    assert b.submit({"x": np.ones((9, 1))}, 9)["y"].shape == (9, 1)
    b.stop()
