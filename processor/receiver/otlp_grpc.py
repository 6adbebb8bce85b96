"""OTLP/gRPC receiver: opentelemetry.proto.collector.{trace,metrics,logs}.v1.{Trace,Metrics,Logs}Service/Export.

The request arrives as raw bytes (no deserializer) so the fast decoder reads it once (metrics and logs: their
decoders in receiver.signals, through Ingest.export_signal). Status codes:
OK (with partial_success as for HTTP) · INVALID_ARGUMENT malformed · UNAUTHENTICATED bad bearer token ·
RESOURCE_EXHAUSTED queue full, with google.rpc.RetryInfo in grpc-status-details-bin (the OTLP exporters honour
it) · UNAVAILABLE store down and spool full (also with RetryInfo) · payloads over max_body_bytes are refused by
gRPC itself with RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from ..writer import QueueFull, StoreUnavailable
from . import decode, signals
from .otlp_http import Ingest, response_for
from .signals import Signal

log = logging.getLogger(__name__)
SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, msg: str, retry_s: int | None = None) -> None:
    if retry_s is not None:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_s)))
        st = status_pb2.Status(code=code.value[0], message=msg, details=[detail])
        context.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
    context.abort(code, msg)


def make_server(host: str, port: int, ingest: Ingest, *, max_body_bytes: int, workers: int = 8,
                tls: tuple[str, str] | None = None) -> tuple[grpc.Server, int]:
    def accept(context: grpc.ServicerContext, run: Any) -> Any:
        if ingest.auth_token:
            md = dict(context.invocation_metadata())
            if not ingest.authorized(md.get("authorization")):
                _abort(context, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        try:
            return run()
        except decode.DecodeError as e:
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e)[:1000])
        except QueueFull:
            _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, "queue full, retry later", ingest.retry_after_s)
        except StoreUnavailable:
            _abort(context, grpc.StatusCode.UNAVAILABLE, "store unavailable and spool full", ingest.retry_after_s)

    def export(body: bytes, context: grpc.ServicerContext) -> ExportTraceServiceResponse:
        return response_for(accept(context, lambda: ingest.export(body, is_json=False)))

    def signal_handler(sig: Signal) -> grpc.GenericRpcHandler:
        def export_signal(body: bytes, context: grpc.ServicerContext) -> Any:
            return sig.response_for(accept(context, lambda: ingest.export_signal(sig, body, is_json=False)))

        return grpc.method_handlers_generic_handler(sig.service, {
            "Export": grpc.unary_unary_rpc_method_handler(
                export_signal, request_deserializer=None, response_serializer=sig.response.SerializeToString),
        })

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Export": grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None, response_serializer=ExportTraceServiceResponse.SerializeToString),
    })
    opts = [("grpc.max_receive_message_length", max_body_bytes), ("grpc.so_reuseport", 0)]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers), options=opts)
    server.add_generic_rpc_handlers((handler, *(signal_handler(sig) for sig in signals.SIGNALS)))
    addr = f"{host}:{port}"
    if tls:
        with open(tls[0], "rb") as c, open(tls[1], "rb") as k:
            creds = grpc.ssl_server_credentials([(k.read(), c.read())])
        bound = server.add_secure_port(addr, creds)
    else:
        bound = server.add_insecure_port(addr)
    if not bound:
        raise OSError(f"cannot bind gRPC to {addr}")
    return server, bound
