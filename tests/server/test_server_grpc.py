"""gRPC front end of keras_ssl.serve: the tensorflow-serving-api stubs work unchanged.

Against the in-process ``server`` fixture (conftest.py).
"""
from __future__ import annotations

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, prediction_service_pb2_grpc)

from server_support import grpc_predict
from support import images, png


def test_grpc_predict_metadata_status(server, channel):
    x = images(3)
    expect = server.enc(x, training=False).numpy()
    resp = grpc_predict(channel, "tiny", {"images": x})
    assert resp.model_spec.name == "tiny" and resp.model_spec.version.value == 2
    assert resp.model_spec.signature_name == "serving_default"
    assert set(resp.outputs) == {"features", "conv1"}
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["features"]), expect, rtol=1e-5, atol=1e-5)
    resp = grpc_predict(channel, "tiny", {"images": x}, output_filter=["features"], label="stable")
    assert set(resp.outputs) == {"features"} and resp.model_spec.version.value == 1
    resp = grpc_predict(channel, "tiny", {"image_bytes": np.array([png(x[0])], dtype=object)},
                        signature="image_bytes", version=1)
    np.testing.assert_allclose(tf.make_ndarray(resp.outputs["features"])[0],
                               server.enc(np.round(x[:1] * 255) / 255, training=False).numpy()[0], atol=1e-4)

    req = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    req.model_spec.name = "tiny"
    meta = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(req, timeout=30)
    sdm = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(sdm)
    assert {"serving_default", "image_bytes"} <= set(sdm.signature_def)
    assert meta.model_spec.version.value == 2

    sreq = get_model_status_pb2.GetModelStatusRequest()
    sreq.model_spec.name = "tiny"
    st = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(sreq, timeout=30)
    assert [(s.version, s.state) for s in st.model_version_status] == [
        (2, get_model_status_pb2.ModelVersionStatus.AVAILABLE),
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)]
    assert st.model_version_status[0].status.error_code == 0


def test_grpc_errors(server, channel):
    x = images(1)
    cases = [
        (dict(name="nope", inputs={"images": x}), grpc.StatusCode.NOT_FOUND),
        (dict(name="tiny", inputs={"images": x}, version=7), grpc.StatusCode.NOT_FOUND),
        (dict(name="tiny", inputs={"images": x}, signature="nope"), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"images": x.astype(np.int32)[:, :3]}), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"images": np.array([b"x"], dtype=object)}), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"images": x}, output_filter=["nope"]), grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="tiny", inputs={"image_bytes": np.array([b"junk"], dtype=object)}, signature="image_bytes"),
         grpc.StatusCode.INVALID_ARGUMENT),
        (dict(name="../x", inputs={"images": x}), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    # a TensorProto declaring a huge shape with one value (would broadcast to GBs)
    huge = tf.make_tensor_proto(np.zeros([1], np.float32))
    huge.tensor_shape.Clear()
    for d in (100000, 28, 28, 1000):
        huge.tensor_shape.dim.add(size=d)
    del huge.float_val[:]
    huge.tensor_content = b""
    huge.float_val.append(0.0)
    cases.append((dict(name="tiny", inputs={"images": huge}), grpc.StatusCode.INVALID_ARGUMENT))
    for kwargs, code in cases:
        with pytest.raises(grpc.RpcError) as e:
            grpc_predict(channel, **kwargs)
        assert e.value.code() == code, (kwargs.get("signature"), e.value.details())
        assert e.value.details()
    assert grpc_predict(channel, "tiny", {"images": x}).model_spec.version.value == 2
