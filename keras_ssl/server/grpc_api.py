"""TF Serving's gRPC API (tensorflow-serving-api stubs) for the local server.

``tensorflow.serving.PredictionService``: ``Predict`` and ``GetModelMetadata``
(the other methods answer UNIMPLEMENTED);
``tensorflow.serving.ModelService``: ``GetModelStatus``. Client mistakes get
INVALID_ARGUMENT / NOT_FOUND with a message; tensors are read by
:mod:`.grpc_tensor` (value counts and real sizes checked against the declared
shape before anything is allocated; no ``tf.make_ndarray``, no pickle). Every
RPC goes through :func:`_rpc`: a :class:`ServingError` aborts with its code and
message, anything else is logged and aborts INTERNAL.

Load limits: a message over ``max_message_bytes`` is refused by gRPC itself
(RESOURCE_EXHAUSTED); one with more than ``max_request_fields`` field
occurrences is refused INVALID_ARGUMENT before it is parsed
(:mod:`.grpc_wire`); ``Classify`` / ``Regress`` / ``MultiInference`` /
``HandleReloadConfigRequest`` answer UNIMPLEMENTED without parsing their
request. At most ``max_concurrent_rpcs`` RPCs (default: twice the worker
threads) are admitted at once, running on ``max_workers`` threads, the rest
waiting for one; gRPC answers every RPC beyond that RESOURCE_EXHAUSTED at once
instead of queueing it without limit.
"""
from __future__ import annotations

import functools
import logging
from concurrent import futures
from typing import Callable, Optional

import grpc

from keras_ssl.server.errors import ServingError, invalid
from keras_ssl.server.grpc_tensor import fill_tensor_proto, tensor_proto_to_array
from keras_ssl.server.grpc_wire import MAX_REQUEST_FIELDS, Refused, checked_parser
from keras_ssl.server.manager import ModelManager

__all__ = ["GrpcServer", "fill_tensor_proto", "tensor_proto_to_array"]

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
    """An RPC behaviour ``(request, context)`` from ``handler(request)``: a request refused
    on the wire is INVALID_ARGUMENT, errors become gRPC aborts."""
    @functools.wraps(handler)
    def method(request, context):
        try:
            if isinstance(request, Refused):
                raise invalid(request.reason)
            return handler(request)
        except ServingError as e:
            _abort(context, e)
        except Exception as e:  # noqa: BLE001 - a bug answers INTERNAL, the server keeps running
            log.exception("internal error in %s", getattr(handler, "__name__", "rpc"))
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


_UNPARSED = object()  # gRPC takes a deserializer's None for a failure (INTERNAL)


def _unparsed(data: bytes) -> object:
    """The deserializer of methods we do not implement: their requests are never parsed."""
    return _UNPARSED


def _unimplemented(name: str, response_cls):
    def answer(request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED,
                      f"{name} is not implemented by this server; use Predict")
    return grpc.unary_unary_rpc_method_handler(answer, request_deserializer=_unparsed,
                                               response_serializer=response_cls.SerializeToString)


def _handlers(manager: ModelManager, max_tensor_bytes: int, max_request_fields: int) -> tuple:
    """The generic handlers of PredictionService and ModelService over ``manager``.

    Implemented methods get their request through :func:`.grpc_wire.checked_parser`
    (field budget checked on the wire before protobuf parses it); the others
    answer UNIMPLEMENTED without parsing their request at all.
    """
    from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                         get_model_status_pb2, inference_pb2, model_management_pb2,
                                         predict_pb2, regression_pb2)

    def method(handler: Callable, request_cls, response_cls):
        return grpc.unary_unary_rpc_method_handler(
            _rpc(handler), request_deserializer=checked_parser(request_cls, max_request_fields),
            response_serializer=response_cls.SerializeToString)

    prediction = {
        "Predict": method(lambda r: predict_response(manager, r, max_tensor_bytes),
                          predict_pb2.PredictRequest, predict_pb2.PredictResponse),
        "GetModelMetadata": method(lambda r: metadata_response(manager, r),
                                   get_model_metadata_pb2.GetModelMetadataRequest,
                                   get_model_metadata_pb2.GetModelMetadataResponse),
        "Classify": _unimplemented("Classify", classification_pb2.ClassificationResponse),
        "Regress": _unimplemented("Regress", regression_pb2.RegressionResponse),
        "MultiInference": _unimplemented("MultiInference", inference_pb2.MultiInferenceResponse),
    }
    model = {
        "GetModelStatus": method(lambda r: status_response(manager, r),
                                 get_model_status_pb2.GetModelStatusRequest,
                                 get_model_status_pb2.GetModelStatusResponse),
        "HandleReloadConfigRequest": _unimplemented("HandleReloadConfigRequest",
                                                    model_management_pb2.ReloadConfigResponse),
    }
    return (grpc.method_handlers_generic_handler("tensorflow.serving.PredictionService", prediction),
            grpc.method_handlers_generic_handler("tensorflow.serving.ModelService", model))


class GrpcServer:
    """gRPC front end bound to (host, port); ``port=0`` picks a free port."""

    def __init__(self, manager: ModelManager, host: str = "127.0.0.1", port: int = 8500,
                 max_message_bytes: int = 64 * 1024 * 1024, max_workers: int = 64,
                 max_tensor_bytes: Optional[int] = None, max_concurrent_rpcs: Optional[int] = None,
                 max_request_fields: int = MAX_REQUEST_FIELDS):
        # Admitted RPCs beyond the worker threads wait in the executor's queue;
        # the cap bounds that queue (and the request messages it holds).
        self.max_concurrent_rpcs = max_concurrent_rpcs or 2 * max_workers
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
            maximum_concurrent_rpcs=self.max_concurrent_rpcs,
            options=[("grpc.max_receive_message_length", max_message_bytes),
                     ("grpc.max_send_message_length", -1),
                     ("grpc.so_reuseport", 0)])
        self.server.add_generic_rpc_handlers(
            _handlers(manager, max_tensor_bytes or 4 * max_message_bytes, max_request_fields))
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
