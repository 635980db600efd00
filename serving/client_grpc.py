"""Feature extraction over TF Serving's gRPC API (tensorflow-serving-api).

Works unchanged against TF Serving and the local server::

    python serving/client_grpc.py --server localhost:8500 --model mnist_egomotion digit.png
    python serving/client_grpc.py --server localhost:8500 --model mnist_egomotion --random 4

Image files are sent raw (no base64 over gRPC) to the ``image_bytes``
signature; ``--random N`` sends float32 images to ``serving_default``. Also
shows ``GetModelStatus`` and the signatures from ``GetModelMetadata``.
"""
from __future__ import annotations

import argparse
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc)


def _spec(msg, model: str, version: int | None, label: str | None):
    msg.model_spec.name = model
    if version is not None:
        msg.model_spec.version.value = version
    elif label:
        msg.model_spec.version_label = label
    return msg


def predict(channel, model: str, inputs: dict, signature: str = "serving_default",
            version: int | None = None, label: str | None = None, timeout: float = 30.0) -> dict:
    """{output name: ndarray} for ``inputs`` ({input name: ndarray or list of bytes})."""
    req = _spec(predict_pb2.PredictRequest(), model, version, label)
    req.model_spec.signature_name = signature
    for k, v in inputs.items():
        req.inputs[k].CopyFrom(tf.make_tensor_proto(v))
    resp = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(req, timeout=timeout)
    return {k: tf.make_ndarray(v) for k, v in resp.outputs.items()}


def signatures(channel, model: str, version: int | None = None):
    req = _spec(get_model_metadata_pb2.GetModelMetadataRequest(), model, version, None)
    req.metadata_field.append("signature_def")
    resp = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(req, timeout=30)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    resp.metadata["signature_def"].Unpack(sdm)
    return sdm.signature_def


def status(channel, model: str):
    req = _spec(get_model_status_pb2.GetModelStatusRequest(), model, None, None)
    return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(req, timeout=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", default="localhost:8500", help="host:port of the gRPC API")
    ap.add_argument("--model", required=True)
    ap.add_argument("--version", type=int)
    ap.add_argument("--label")
    ap.add_argument("--random", type=int, default=0)
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    channel = grpc.insecure_channel(args.server)
    try:
        for s in status(channel, args.model).model_version_status:
            print(f"version {s.version}: {get_model_status_pb2.ModelVersionStatus.State.Name(s.state)}")
        sigs = signatures(channel, args.model, args.version)
        if args.files:
            data = []
            for p in args.files:
                with open(p, "rb") as f:
                    data.append(f.read())
            out = predict(channel, args.model, {"image_bytes": np.array(data, dtype=object)},
                          "image_bytes", args.version, args.label)
            names = args.files
        else:
            dims = [d.size for d in sigs["serving_default"].inputs["images"].tensor_shape.dim[1:]]
            n = max(1, args.random)
            x = np.random.default_rng(0).random((n, *dims), dtype=np.float32)
            out = predict(channel, args.model, {"images": x}, "serving_default", args.version, args.label)
            names = [f"random[{i}]" for i in range(n)]
    except grpc.RpcError as e:
        print(f"error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    for i, name in enumerate(names):
        f = out["features"][i]
        print(f"{name}: {f.shape[0]} features, first: {np.round(f[:4], 4).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
