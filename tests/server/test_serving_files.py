"""Deployment files (Dockerfile, serving/) agree with what keras_ssl.export writes.

No Docker engine here: the Dockerfile is parsed, its ARG defaults resolved,
and its paths checked against a real export made the way its export stage
runs it.
"""
from __future__ import annotations

import json
import py_compile
import re
from pathlib import Path

import keras
import pytest

from keras_ssl import export as ex
from keras_ssl.server.model_config import parse_batching_config, parse_models_config
from support import ROOT as REPO
DOCKERFILE = REPO / "Dockerfile"
SERVING = REPO / "serving"


def parse_dockerfile(text: str) -> tuple[dict, list[dict]]:
    """(global ARG defaults, stages); each stage: name, base, args, instructions [(op, arg)]."""
    text = re.sub(r"\\\n", " ", text)  # line continuations
    global_args, stages = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        op, rest = op.upper(), rest.strip()
        if op == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            stages.append({"base": m.group(1), "name": m.group(2), "args": {}, "ins": []})
        elif op == "ARG":
            k, _, v = rest.partition("=")
            (stages[-1]["args"] if stages else global_args)[k] = v.strip("\"'")
        elif stages:
            stages[-1]["ins"].append((op, rest))
    return global_args, stages


def expand(s: str, env: dict) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), m.group(0)), s)


@pytest.fixture(scope="module")
def docker():
    g, stages = parse_dockerfile(DOCKERFILE.read_text())
    return g, {s["name"]: s for s in stages}


def models_config():
    return parse_models_config((SERVING / "models.config").read_text(), "serving/models.config")


def test_base_images_are_pinned(docker):
    g, stages = docker
    assert set(stages) >= {"train", "export", "serve"}
    for name, st in stages.items():
        base = expand(st["base"], g)
        if base in stages:  # FROM an earlier stage
            continue
        repo, _, tag = base.partition(":")
        assert tag and tag != "latest" and re.match(r"\d", tag), f"stage {name}: unpinned base {base}"
    serve = expand(stages["serve"]["base"], g)
    assert serve.startswith("tensorflow/serving:")
    # same version as the tensorflow-serving-api the project pins
    req = (REPO / "requirements.txt").read_text()
    api = re.search(r"tensorflow-serving-api==([\d.]+)", req).group(1)
    assert serve == f"tensorflow/serving:{api}"


def test_train_stage_runs_trainer(docker):
    _, stages = docker
    ins = dict((op, arg) for op, arg in stages["train"]["ins"] if op in ("ENTRYPOINT", "CMD"))
    assert json.loads(ins["ENTRYPOINT"]) == ["python", "-m", "keras_ssl.train"]
    cmd = json.loads(ins["CMD"])
    assert cmd[0] == "--config" and cmd[1].startswith("configs/")


def test_paths_match_export_layout(docker, tmp_path):
    """Run the export stage's command for real (paths mapped into tmp) and follow the COPYs."""
    g, stages = docker
    exp, serve = stages["export"], stages["serve"]
    model_name = exp["args"]["MODEL_NAME"]
    assert serve["args"]["MODEL_NAME"] == model_name
    env = {**g, **exp["args"]}
    run_cmd = [expand(a, env) for op, a in exp["ins"] if op == "RUN"][-1]
    m = re.search(r"python -m keras_ssl\.export --run-dir (\S+) --base-path (\S+) --model-name \"?([^\"\s]+)", run_cmd)
    assert m, run_cmd
    run_dir, base, name = m.groups()
    assert name == model_name
    copy_in = [expand(a, env) for op, a in exp["ins"] if op == "COPY"]
    assert any(a.endswith(f" {run_dir}/") and "encoder.keras" in a and "config.json" in a for a in copy_in)

    # the export stage, mapped into tmp: /run -> tmp/run, /export -> tmp/export
    inp = keras.Input((28, 28, 1), name="images")
    out = keras.layers.Dense(4, name="fc")(keras.layers.Flatten(name="flatten")(inp))
    fake_run = tmp_path / run_dir.strip("/")
    fake_run.mkdir(parents=True)
    keras.Model(inp, out).save(fake_run / "encoder.keras")
    (fake_run / "config.json").write_text(json.dumps({"name": "x", "data": {"image_size": 28, "channels": 1}}))
    version_dir = ex.export_run(fake_run, model_name=name, base_path=tmp_path / base.strip("/"))
    assert version_dir == tmp_path / base.strip("/") / model_name / "1"

    # serve stage: COPY --from=export /export/<name>/ -> /models/<name>/ and
    # the entrypoint's --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME}
    senv = {**g, **serve["args"]}
    envs = " ".join(expand(a, senv) for op, a in serve["ins"] if op == "ENV")
    assert f"MODEL_NAME={model_name}" in envs and "MODEL_BASE_PATH=/models" in envs
    copies = [expand(a, senv).split() for op, a in serve["ins"] if op == "COPY"]
    from_export = [c for c in copies if c[0] == "--from=export"]
    assert from_export == [["--from=export", f"{base}/{model_name}/", f"/models/{model_name}/"]]
    # what lands in the image: /models/<name>/<version>/saved_model.pb
    in_image = Path("/models") / model_name / version_dir.name / "saved_model.pb"
    assert (version_dir / "saved_model.pb").is_file()
    # models.config points TF Serving at the same directory
    cfgs = models_config()
    assert [c.name for c in cfgs] == [model_name]
    assert cfgs[0].base_path.rstrip("/") == str(in_image.parents[1])
    # config files copied to /models/, and the CMD points at them
    conf_copy = [c for c in copies if c[0] != "--from=export"]
    assert conf_copy == [["serving/models.config", "serving/batching.config", "/models/"]]
    cmd = json.loads([a for op, a in serve["ins"] if op == "CMD"][-1])
    assert "--enable_batching" in cmd and "--batching_parameters_file=/models/batching.config" in cmd


def test_batching_config_parses():
    cfg = parse_batching_config((SERVING / "batching.config").read_text(), "serving/batching.config")
    assert cfg.max_batch_size >= 1 and cfg.batch_timeout_micros >= 0 and cfg.num_batch_threads >= 1
    with pytest.raises(ValueError, match="unknown field"):
        parse_batching_config("max_batch_sise { value: 3 }")
    with pytest.raises(ValueError, match="integer"):
        parse_batching_config("max_batch_size { value: many }")


def test_clients_and_readme():
    for name in ("client_rest.py", "client_grpc.py"):
        py_compile.compile(str(SERVING / name), doraise=True)
    readme = (SERVING / "README.md").read_text()
    name = models_config()[0].name
    for needle in ("tensorflow/serving", "models.config", "batching.config", "keras_ssl.export",
                   "keras_ssl.serve", "keras_ssl.serve_bench", f"/models/{name}", "8500", "8501"):
        assert needle in readme, needle
