"""TF Serving's gRPC API (tensorflow-serving-api stubs) for the local server.

``tensorflow.serving.PredictionService``: ``Predict`` and ``GetModelMetadata``
(``Classify`` / ``Regress`` / ``MultiInference`` answer UNIMPLEMENTED);
``tensorflow.serving.ModelService``: ``GetModelStatus``. Client mistakes get
INVALID_ARGUMENT / NOT_FOUND with a message; tensors are read with
``tf.make_ndarray`` after checking their declared size (no pickle). Every
RPC goes through :func:`_rpc`: a :class:`ServingError` aborts with its code and
message, anything else is logged and aborts INTERNAL.
"""
from __future__ import annotations

import functools
import logging
import sys
from concurrent import futures
from typing import Callable, Optional

import grpc
import numpy as np

from keras_ssl.server.errors import ServingError, invalid
from keras_ssl.server.manager import ModelManager

log = logging.getLogger("keras_ssl.serve")

_GRPC_CODE = {
    "INVALID_ARGUMENT": grpc.StatusCode.INVALID_ARGUMENT,
    "FAILED_PRECONDITION": grpc.StatusCode.FAILED_PRECONDITION,
    "OUT_OF_RANGE": grpc.StatusCode.OUT_OF_RANGE,
    "NOT_FOUND": grpc.StatusCode.NOT_FOUND,
    "RESOURCE_EXHAUSTED": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "UNIMPLEMENTED": grpc.StatusCode.UNIMPLEMENTED,
    "UNAVAILABLE": grpc.StatusCode.UNAVAILABLE,
    "DEADLINE_EXCEEDED": grpc.StatusCode.DEADLINE_EXCEEDED,
    "INTERNAL": grpc.StatusCode.INTERNAL,
}
_STATE = {"UNKNOWN": 0, "START": 10, "LOADING": 20, "AVAILABLE": 30, "UNLOADING": 40, "END": 50}


def tensor_proto_to_array(name: str, proto, max_bytes: int) -> np.ndarray:
    """``tf.make_ndarray`` after checking the declared shape against ``max_bytes``."""
    import tensorflow as tf
    from tensorflow.core.framework import types_pb2

    dims = [d.size for d in proto.tensor_shape.dim]
    if any(d < 0 for d in dims):
        raise invalid(f"input '{name}': tensor_shape has a negative dimension {dims}")
    n = 1
    for d in dims:
        n *= d
    try:
        itemsize = 8 if proto.dtype == types_pb2.DT_STRING else tf.as_dtype(proto.dtype).size
    except TypeError:
        raise invalid(f"input '{name}': unsupported dtype {proto.dtype}") from None
    if n * max(itemsize, 1) > max_bytes:
        raise invalid(f"input '{name}': tensor of shape {dims} exceeds the size limit of {max_bytes} bytes")
    np_dtype = _NUMERIC.get(proto.dtype)
    if np_dtype is not None and proto.tensor_content:
        # Fast path (what tf.make_tensor_proto sends for numeric arrays): raw little-endian bytes.
        if len(proto.tensor_content) != n * np_dtype.itemsize:
            raise invalid(f"input '{name}': tensor_content has {len(proto.tensor_content)} bytes, "
                          f"shape {dims} of {np_dtype.name} needs {n * np_dtype.itemsize}")
        return np.frombuffer(proto.tensor_content, dtype=np_dtype).reshape(dims)
    try:
        return tf.make_ndarray(proto)
    except Exception as e:  # noqa: BLE001 - any malformed TensorProto is the client's
        raise invalid(f"input '{name}': malformed TensorProto: {type(e).__name__}: {e}") from None


def _numeric_dtypes():
    from tensorflow.core.framework import types_pb2 as t

    pairs = {t.DT_FLOAT: "<f4", t.DT_DOUBLE: "<f8", t.DT_HALF: "<f2", t.DT_INT8: "i1",
             t.DT_INT16: "<i2", t.DT_INT32: "<i4", t.DT_INT64: "<i8", t.DT_UINT8: "u1",
             t.DT_UINT16: "<u2", t.DT_UINT32: "<u4", t.DT_UINT64: "<u8", t.DT_BOOL: "?"}
    return {k: np.dtype(v) for k, v in pairs.items()}


_NUMERIC = _numeric_dtypes()
_NP_TO_DT = {v.newbyteorder("=") if v.byteorder != "|" else v: k for k, v in _NUMERIC.items()}


def fill_tensor_proto(proto, arr: np.ndarray) -> None:
    """Write ``arr`` into ``proto`` (raw tensor_content for numeric dtypes, as TF does)."""
    dt = _NP_TO_DT.get(arr.dtype)
    if dt is None or sys.byteorder != "little":
        import tensorflow as tf

        proto.CopyFrom(tf.make_tensor_proto(arr))
        return
    proto.dtype = dt
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=d)
    proto.tensor_content = np.ascontiguousarray(arr).tobytes()


def _abort(context, e: ServingError):
    context.abort(_GRPC_CODE.get(e.code, grpc.StatusCode.INTERNAL), e.message)


def _spec(request):
    ms = request.model_spec
    version = ms.version.value if ms.HasField("version") else None
    label = ms.version_label or None
    if version is not None and label is not None:
        raise invalid("model_spec sets both version and version_label")
    return ms.name, version, label


def _model_spec(name, version, signature_name):
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=name, signature_name=signature_name)
    spec.version.value = version
    return spec


def _rpc(handler: Callable):
    """A servicer method from ``handler(self, request)``: errors become gRPC aborts."""
    @functools.wraps(handler)
    def method(self, request, context):
        try:
            return handler(self, request)
        except ServingError as e:
            _abort(context, e)
        except Exception as e:  # noqa: BLE001 - a bug answers INTERNAL, the server keeps running
            log.exception("internal error in %s", handler.__name__)
            _abort(context, ServingError("INTERNAL", f"{type(e).__name__}: {e}"))
    return method


def predict_response(manager: ModelManager, request, max_tensor_bytes: int):
    """The PredictResponse to a PredictRequest."""
    from tensorflow_serving.apis import predict_pb2

    name, version, label = _spec(request)
    lv = manager.resolve(name, version, label)
    inputs = {k: tensor_proto_to_array(k, v, max_tensor_bytes) for k, v in request.inputs.items()}
    sig, out = lv.predict(request.model_spec.signature_name, inputs, tuple(request.output_filter))
    resp = predict_pb2.PredictResponse(model_spec=_model_spec(name, lv.version, sig))
    for k, v in out.items():
        fill_tensor_proto(resp.outputs[k], v)
    return resp


def metadata_response(manager: ModelManager, request):
    """The GetModelMetadataResponse (signature_def only, as TF Serving) to its request."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    name, version, label = _spec(request)
    fields = list(request.metadata_field)
    if fields != ["signature_def"]:
        raise invalid(f"metadata_field must be [\"signature_def\"], got {fields}")
    lv = manager.resolve(name, version, label)
    resp = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=_model_spec(name, lv.version, ""))
    resp.metadata["signature_def"].Pack(lv.signature_def_map())
    return resp


def status_response(manager: ModelManager, request):
    """The GetModelStatusResponse to its request."""
    from tensorflow_serving.apis import get_model_status_pb2, status_pb2

    name, version, label = _spec(request)
    states = manager.status(name, version, label)
    resp = get_model_status_pb2.GetModelStatusResponse()
    for v, st in states:
        mvs = resp.model_version_status.add()
        mvs.version = v
        mvs.state = _STATE[st.state]
        code = 0 if st.error_code == "OK" else 2  # OK / UNKNOWN (tensorflow.error.Code)
        mvs.status.CopyFrom(status_pb2.StatusProto(error_code=code, error_message=st.error_message))
    return resp


def _servicers(manager: ModelManager, max_tensor_bytes: int):
    """The PredictionService and ModelService servicers over ``manager``."""
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        @_rpc
        def Predict(self, request):  # noqa: N802
            return predict_response(manager, request, max_tensor_bytes)

        @_rpc
        def GetModelMetadata(self, request):  # noqa: N802
            return metadata_response(manager, request)

    class ModelService(model_service_pb2_grpc.ModelServiceServicer):
        @_rpc
        def GetModelStatus(self, request):  # noqa: N802
            return status_response(manager, request)

    return PredictionService(), ModelService()


class GrpcServer:
    """gRPC front end bound to (host, port); ``port=0`` picks a free port."""

    def __init__(self, manager: ModelManager, host: str = "127.0.0.1", port: int = 8500,
                 max_message_bytes: int = 64 * 1024 * 1024, max_workers: int = 64,
                 max_tensor_bytes: Optional[int] = None):
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            options=[("grpc.max_receive_message_length", max_message_bytes),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)])
        pred, model = _servicers(manager, max_tensor_bytes or 4 * max_message_bytes)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(pred, self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, self.server)
        addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self.server.add_insecure_port(addr)
        if self.port == 0:
            raise OSError(f"cannot bind gRPC port {addr}")
        self.host = host

    def start(self):
        self.server.start()
        return self

    def stop(self, grace: float = 1.0):
        self.server.stop(grace).wait()
