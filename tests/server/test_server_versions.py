"""Model manager of keras_ssl.serve: new versions picked up and models.config reloaded while serving.

Each test runs its own in-process server on free ports of 127.0.0.1.
"""
from __future__ import annotations

import threading
import time

import grpc
import numpy as np

from keras_ssl.export import export_encoder
from keras_ssl.server.app import start_server
from keras_ssl.server.model_config import BatchingConfig, ModelConfig, parse_models_config
from server_support import grpc_predict, rest
from support import images, tiny_encoder


def test_hot_version_pickup(tmp_path):
    base = tmp_path / "m"
    enc1, enc2 = tiny_encoder(seed=1), tiny_encoder(seed=2)
    export_encoder(enc1, tmp_path, "m")
    h = start_server([ModelConfig("m", str(base))], poll_wait_seconds=0.2,
                     batching=BatchingConfig(max_batch_size=4, batch_timeout_micros=1000))
    try:
        x = images(1)
        stop = threading.Event()
        errors, versions = [], set()

        def hammer():
            ch = grpc.insecure_channel(f"127.0.0.1:{h.grpc_port}")
            while not stop.is_set():
                try:
                    versions.add(grpc_predict(ch, "m", {"images": x}).model_spec.version.value)
                except grpc.RpcError as e:  # any failure during the swap is a bug
                    errors.append(e.details())
            ch.close()

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        deadline = time.time() + 30
        while 1 not in versions and time.time() < deadline:
            time.sleep(0.05)
        export_encoder(enc2, tmp_path, "m")  # atomic: a polling server never sees it half-written
        deadline = time.time() + 30
        while time.time() < deadline:
            s, body = rest(h, "GET", "/v1/models/m")
            states = {v["version"]: v["state"] for v in body["model_version_status"]}
            if states.get("2") == "AVAILABLE" and states.get("1") == "END":
                break
            time.sleep(0.1)
        deadline = time.time() + 30
        while 2 not in versions and time.time() < deadline:
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join()
        assert states == {"2": "AVAILABLE", "1": "END"}
        assert errors == [] and versions == {1, 2}
        s, body = rest(h, "POST", "/v1/models/m:predict", {"instances": x.tolist()})
        np.testing.assert_allclose(np.array(body["predictions"]), enc2(x, training=False).numpy(), rtol=1e-5, atol=1e-5)
        assert rest(h, "POST", "/v1/models/m/versions/1:predict", {"instances": x.tolist()})[0] == 404
    finally:
        h.stop()


def test_model_config_file_reload(tmp_path):
    """--model_config_file_poll_wait_seconds: models added / removed / relabelled while serving."""
    enc = tiny_encoder()
    export_encoder(enc, tmp_path / "m", "a")
    export_encoder(enc, tmp_path / "m", "b")
    cfg = tmp_path / "models.config"

    def write(*names, label=None):
        blocks = "".join(
            f"config {{ name: '{n}' base_path: '{tmp_path / 'm' / n}' model_platform: 'tensorflow' "
            + (f"version_labels {{ key: '{label}' value: 1 }} " if label else "") + "}\n" for n in names)
        cfg.write_text("model_config_list {\n" + blocks + "}\n")

    write("a")
    h = start_server(parse_models_config(cfg.read_text()), poll_wait_seconds=0, grpc_port=None,
                     model_config_file=str(cfg), model_config_poll_seconds=0.2)
    try:
        def status(path):
            return rest(h, "GET", path)[0]

        def wait_for(path, code):
            deadline = time.time() + 30
            while time.time() < deadline and status(path) != code:
                time.sleep(0.1)
            return status(path)

        assert status("/v1/models/a") == 200 and status("/v1/models/b") == 404
        write("a", "b", label="stable")
        assert wait_for("/v1/models/b/labels/stable", 200) == 200
        cfg.write_text("model_config_list { config { name: 'a/b' } }")  # bad file: old config kept
        time.sleep(0.6)
        assert status("/v1/models/b") == 200
        write("b")
        assert wait_for("/v1/models/a", 404) == 404
        s, body = rest(h, "POST", "/v1/models/b:predict", {"instances": images(1).tolist()})
        assert s == 200
    finally:
        h.stop()
