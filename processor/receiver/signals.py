"""The OTLP signals besides traces, in one place: HTTP path, gRPC service, messages, spool payload kinds, decoder.

Traces keep their own fast path (receiver.decode, engine_decode); metrics and logs go through this table in the
receivers (otlp_http, otlp_grpc), the writer (payload kinds, replay, one insert per target table) and /metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

from . import decode_logs, decode_metrics
from .decode_signal import SignalRows


@dataclass(frozen=True)
class Signal:
    name: str  # "metrics", "logs": the counters' prefix
    path: str  # OTLP/HTTP path
    service: str  # gRPC service (method Export)
    response: type[Message]
    rejected_field: str  # partial_success field counting rejected items
    pb_kind: bytes  # spool payload kind bytes (writer: 0x01 + kind + u32 count + body)
    json_kind: bytes
    decode: Callable[..., SignalRows]  # (body, *, is_json) → SignalRows
    columns: dict[str, tuple[str, ...]]  # target table → insert columns

    def kind(self, is_json: bool) -> bytes:
        return self.json_kind if is_json else self.pb_kind

    def response_for(self, res: SignalRows) -> Message:
        out = self.response()
        if res.rejected:
            setattr(out.partial_success, self.rejected_field, res.rejected)
            out.partial_success.error_message = res.error_message
        return out


METRICS = Signal("metrics", "/v1/metrics", "opentelemetry.proto.collector.metrics.v1.MetricsService",
                 ExportMetricsServiceResponse, "rejected_data_points", b"M", b"m", decode_metrics.decode,
                 decode_metrics.COLUMNS)
LOGS = Signal("logs", "/v1/logs", "opentelemetry.proto.collector.logs.v1.LogsService", ExportLogsServiceResponse,
              "rejected_log_records", b"L", b"l", decode_logs.decode, {decode_logs.TABLE: decode_logs.COLUMNS})
SIGNALS: tuple[Signal, ...] = (METRICS, LOGS)
BY_PATH = {s.path: s for s in SIGNALS}
BY_KIND = {k: (s, k == s.json_kind) for s in SIGNALS for k in (s.pb_kind, s.json_kind)}
# the table each decoder row goes to → its insert columns
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {t: c for s in SIGNALS for t, c in s.columns.items()}
