"""Processor settings. Precedence: command-line flags > env PROMPTPULSE_* > TOML file (``--config``) > defaults.

Env names are ``PROMPTPULSE_`` + the upper-cased field name (``PROMPTPULSE_AUTH_TOKEN``, ``PROMPTPULSE_API_PORT``).
The TOML file holds the same names, at top level or under a ``[processor]`` table.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass
class Settings:
    data_dir: str = "./.promptpulse/data"
    clickhouse_url: str | None = None
    host: str = "127.0.0.1"
    otlp_grpc_port: int = 4317
    otlp_http_port: int = 4318
    api_port: int = 8321
    auth_token: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    max_body_bytes: int = 32 * 1024 * 1024  # compressed and decompressed OTLP request size limit
    queue_max_spans: int = 100_000  # accepted-but-not-inserted spans before 429 (while the store is up)
    batch_max_spans: int = 20_000  # insert when this many spans are ready ...
    batch_max_age_s: float = 1.0  # ... or when the oldest waiting span is this old
    spool_dir: str | None = None  # default: <data_dir>.spool (beside the data dir, which chDB owns)
    spool_max_bytes: int = 1024 * 1024 * 1024  # when the store is down and this is full: 503
    spool_segment_bytes: int = 64 * 1024 * 1024
    spool_fsync: bool = True
    retry_after_s: int = 2
    # HTTP servers (OTLP/HTTP and API; docs/PROCESSOR.md "HTTP edges"): total deadlines, not per recv; 408 on expiry
    http_header_timeout_s: float = 10.0  # from accept / first byte of a request to the end of its headers
    http_body_timeout_s: float = 60.0  # the whole body (32 MiB needs >= 0.6 MB/s)
    http_idle_timeout_s: float = 60.0  # a kept-alive connection waiting for its next request is closed after
    http_max_connections: int = 1024  # open connections per server (a thread each); beyond: 503 + Retry-After
    grpc_workers: int = 8
    apply_schema: bool = True
    # The [alerts] table of the TOML file, as read (rules, channels, interval_s): processor/alerts/rules.py.
    alerts: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    # The [reports] table (schedule, time, format, send, channel): processor/reports.py.
    reports: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    # The [evaluation] table (rules, interval_s): promptpulse/evaluation/rules.py, docs/EVALUATION.md.
    evaluation: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @property
    def deadletter_path(self) -> Path:
        """Requests the store refused on their data (processor.deadletter), kept beside the spool."""
        return self.spool_path / "deadletter"

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_dir) if self.spool_dir else Path(str(Path(self.data_dir)) + ".spool")


_FIELDS = {f.name: f for f in fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    if value is None:
        return None
    if isinstance(default, bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return str(value)


def load(flags: dict[str, Any] | None = None, *, config_file: str | None = None,
         env: dict[str, str] | None = None) -> Settings:
    """Merge defaults < TOML file < environment < flags (flags whose value is None are 'not given')."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or env.get("PROMPTPULSE_CONFIG")
    if path:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
        if isinstance(doc.get("alerts"), dict):
            values["alerts"] = doc["alerts"]
        if isinstance(doc.get("reports"), dict):
            values["reports"] = doc["reports"]
        if isinstance(doc.get("evaluation"), dict):
            values["evaluation"] = doc["evaluation"]
        doc = {**{k: v for k, v in doc.items() if not isinstance(v, dict)}, **doc.get("processor", {})}
        for k, v in doc.items():
            k = k.replace("-", "_")
            if k not in _FIELDS:
                raise ValueError(f"{path}: unknown setting {k!r}")
            values[k] = _coerce(k, v)
    for name in _FIELDS:
        if name in ("alerts", "reports", "evaluation"):
            continue
        v = env.get("PROMPTPULSE_" + name.upper())
        if v is not None and v != "":
            values[name] = _coerce(name, v)
    for k, v in (flags or {}).items():
        if k in _FIELDS and v is not None:
            values[k] = _coerce(k, v)
    s = Settings(**values)
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    return s


def as_dict(s: Settings) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    if d.get("auth_token"):
        d["auth_token"] = "***"
    if d.get("alerts"):  # channel tables hold webhook URLs, routing keys, passwords
        d["alerts"] = {k: ("***" if k == "channels" else v) for k, v in d["alerts"].items()}
    if d.get("reports"):
        d["reports"] = {k: ("***" if k == "channels" else v) for k, v in d["reports"].items()}
    return d
