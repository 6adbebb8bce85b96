"""What the metrics and logs decoders share: parsing an OTLP request (protobuf or OTLP/JSON) into its upb message,
the result type (rows per target table), and the value checks.

Both encodings end as the official opentelemetry.proto message, so one row builder per signal reads either:

* protobuf: upb parses and validates it (structure, UTF-8, its nesting limit) → DecodeError when it cannot;
* OTLP/JSON: ``json.loads`` (invalid JSON, an unpaired UTF-16 surrogate → DecodeError), then the hex ids the OTLP/JSON
  mapping differs in (trace/span ids) are turned into the proto3 JSON mapping's base64, then
  ``json_format.ParseDict`` type-checks every field (a wrong type or an integer out of its field's range →
  DecodeError naming it; unknown fields are ignored, as OTLP asks). A malformed hex id becomes a 1-byte id, which the
  row builder rejects like a protobuf id of the wrong length.

Speed matters less than for traces (metrics and logs are few per LLM call), so there is no wire scanner here.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message

from .decode import MAX_TIME_NS, DecodeError, _pb_attrs, _pb_str, load_json_object

__all__ = ["MAX_TIME_NS", "DecodeError", "SignalRows", "attrs", "parse", "service_name", "value_str"]

M = TypeVar("M", bound=Message)
attrs = _pb_attrs  # KeyValues → dict[str, str], values rendered as pcommon AsString (as in otel_traces)
value_str = _pb_str  # one AnyValue → its AsString text
_BAD_ID = base64.b64encode(b"\xff").decode()  # a 1-byte id: rejected by the row builder as the wrong length


@dataclass
class SignalRows:
    """A request's rows per target table (columns in the decoder's COLUMNS order). ``len()`` is the number of
    accepted items (data points, log records): the writer's queue and spool count in it."""

    unit: str  # "data point(s)", "log record(s)"
    tables: dict[str, list[list[Any]]] = field(default_factory=dict)
    count: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)

    def __len__(self) -> int:
        return self.count

    def add(self, table: str, row: list[Any]) -> None:
        self.tables.setdefault(table, []).append(row)
        self.count += 1

    def reject(self, reason: str) -> None:
        self.rejected += 1
        self.reasons[reason] += 1

    @property
    def error_message(self) -> str:
        return "; ".join(f"{n} {self.unit} rejected: {r}" for r, n in self.reasons.most_common())


def service_name(resource_attrs: dict[str, str]) -> str:
    """The exporter's GetServiceName: resource ``service.name`` AsString, "" when absent."""
    return resource_attrs.get("service.name", "")


def parse(body: bytes, cls: type[M], *, is_json: bool, id_paths: Sequence[Sequence[tuple[str, ...]]]) -> M:
    """``body`` as a ``cls`` message. ``id_paths``: where OTLP/JSON holds hex ids, as key alternatives
    (camelCase, snake_case) from the document down to the object holding ``traceId`` / ``spanId``; repeated fields
    (JSON arrays) are walked through transparently."""
    msg = cls()
    if not is_json:
        try:
            msg.ParseFromString(body)
        except (_PbDecodeError, RuntimeError, ValueError) as e:
            raise DecodeError(f"malformed protobuf {cls.__name__}: {e}") from None
        return msg
    doc = load_json_object(body)
    for path in id_paths:
        _hex_ids(doc, path)
    try:
        json_format.ParseDict(doc, msg, ignore_unknown_fields=True)
    except json_format.ParseError as e:
        raise DecodeError(f"malformed OTLP/JSON {cls.__name__}: {str(e)[:500]}") from None
    except (TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as e:
        raise DecodeError(f"malformed OTLP/JSON {cls.__name__}: {type(e).__name__}: {e}") from None
    return msg


def _hex_ids(node: Any, path: Sequence[tuple[str, ...]]) -> None:
    if type(node) is list:
        for x in node:
            _hex_ids(x, path)
        return
    if type(node) is not dict:
        return  # a wrong type: ParseDict names it
    if not path:
        for keys in (("traceId", "trace_id"), ("spanId", "span_id")):
            for k in keys:
                v = node.get(k)
                if type(v) is str and v:
                    try:
                        node[k] = base64.b64encode(binascii.unhexlify(v)).decode()
                    except (binascii.Error, ValueError):
                        node[k] = _BAD_ID
        return
    for k in path[0]:
        if k in node:
            _hex_ids(node[k], path[1:])


def id_ok(b: bytes, n: int) -> bool:
    """An optional id: absent, or exactly ``n`` bytes."""
    return not b or len(b) == n
