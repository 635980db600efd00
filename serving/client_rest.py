"""Feature extraction over TF Serving's REST API (standard library only).

Works unchanged against TF Serving (``tensorflow/serving`` image) and the
local server (``python -m keras_ssl.serve``)::

    python serving/client_rest.py --server localhost:8501 --model mnist_egomotion digit.png more.jpg
    python serving/client_rest.py --server localhost:8501 --model mnist_egomotion --random 4

Image files go to the ``image_bytes`` signature as ``{"b64": ...}`` (decoded,
converted and resized inside the model); ``--random N`` sends N random
images in [0, 1] to ``serving_default`` with the size read from the model's
metadata. Prints one line per image: the feature vector's length and first
values.
"""
from __future__ import annotations

import argparse
import base64
import json
import random
import sys
import urllib.error
import urllib.request


def _call(url: str, body: dict | None = None, timeout: float = 30.0) -> dict:
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            msg = json.loads(e.read()).get("error", "")
        except ValueError:
            msg = e.reason
        raise RuntimeError(f"HTTP {e.code}: {msg}") from None


def model_url(server: str, model: str, version: int | None = None, label: str | None = None) -> str:
    url = f"http://{server}/v1/models/{model}"
    if version is not None:
        url += f"/versions/{version}"
    elif label:
        url += f"/labels/{label}"
    return url


def input_shape(server: str, model: str, version: int | None = None) -> list[int]:
    """[H, W, C] of serving_default's ``images`` input, from the metadata."""
    meta = _call(model_url(server, model, version) + "/metadata")
    sig = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    dims = sig["inputs"]["images"]["tensor_shape"]["dim"]
    return [int(d["size"]) for d in dims[1:]]


def features_for_files(server: str, model: str, paths: list[str], version: int | None = None,
                       label: str | None = None) -> list[dict]:
    """One dict of outputs per image file (``features`` plus any taps)."""
    instances = []
    for p in paths:
        with open(p, "rb") as f:
            instances.append({"b64": base64.b64encode(f.read()).decode("ascii")})
    body = {"signature_name": "image_bytes", "instances": instances}
    return _rows(_call(model_url(server, model, version, label) + ":predict", body)["predictions"])


def features_for_arrays(server: str, model: str, images: list, version: int | None = None,
                        label: str | None = None) -> list[dict]:
    """``images``: nested lists [N][H][W][C] of floats in [0, 1]."""
    body = {"instances": images}
    return _rows(_call(model_url(server, model, version, label) + ":predict", body)["predictions"])


def _rows(predictions: list) -> list[dict]:
    # One output: each prediction is the feature list itself; several: an object per example.
    return [p if isinstance(p, dict) else {"features": p} for p in predictions]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="localhost:8501", help="host:port of the REST API")
    ap.add_argument("--model", required=True)
    ap.add_argument("--version", type=int)
    ap.add_argument("--label")
    ap.add_argument("--random", type=int, default=0, help="send N random images instead of files")
    ap.add_argument("files", nargs="*", help="image files (PNG/JPEG/GIF/BMP/WebP)")
    args = ap.parse_args(argv)
    try:
        if args.files:
            rows = features_for_files(args.server, args.model, args.files, args.version, args.label)
            names = args.files
        else:
            h, w, c = input_shape(args.server, args.model, args.version)
            n = max(1, args.random)
            rng = random.Random(0)
            imgs = [[[[rng.random() for _ in range(c)] for _ in range(w)] for _ in range(h)] for _ in range(n)]
            rows = features_for_arrays(args.server, args.model, imgs, args.version, args.label)
            names = [f"random[{i}]" for i in range(n)]
    except (RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for name, row in zip(names, rows):
        f = row["features"]
        print(f"{name}: {len(f)} features, first: {[round(v, 4) for v in f[:4]]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
