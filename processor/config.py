"""Processor settings. Precedence: command-line flags > env PROMPTPULSE_* > TOML file (``--config``) > defaults.

Env names are ``PROMPTPULSE_`` + the upper-cased field name (``PROMPTPULSE_AUTH_TOKEN``, ``PROMPTPULSE_API_PORT``).
The TOML file holds the same names, at top level or under a ``[processor]`` table.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
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
    config_file: str | None = None  # the TOML file these came from (for error messages); not a setting

    @property
    def deadletter_path(self) -> Path:
        """Requests the store refused on their data (processor.deadletter), kept beside the spool."""
        return self.spool_path / "deadletter"

    @property
    def spool_path(self) -> Path:
        return Path(self.spool_dir) if self.spool_dir else Path(str(Path(self.data_dir)) + ".spool")


_TABLES = ("alerts", "reports", "evaluation")  # TOML tables kept as read, checked by their own modules
_FIELDS = {f.name: f for f in fields(Settings) if f.name != "config_file"}


class ConfigError(ValueError):
    """A setting that cannot be used. The message is one line: where (file, key), what is wrong, the fix."""


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    if value is None:
        return None
    if isinstance(default, bool):
        if isinstance(value, str):
            v = value.strip().lower()
            if v not in ("1", "true", "yes", "on", "0", "false", "no", "off", ""):
                raise ValueError(f"{value!r} is not true or false")
            return v in ("1", "true", "yes", "on")
        return bool(value)
    if isinstance(default, int) and not isinstance(value, bool):
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a whole number") from None
    if isinstance(default, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{value!r} is not a number") from None
    if isinstance(value, (dict, list)):
        raise ValueError(f"expected a single value, not {type(value).__name__}")
    return str(value)


def _unknown(path: str, key: str) -> ConfigError:
    near = difflib.get_close_matches(key, [*_FIELDS, *_TABLES], n=1)
    fix = f"did you mean {near[0]!r}?" if near else "see docs/PROCESSOR.md for the settings"
    return ConfigError(f"{path}: unknown setting {key!r} ({fix})")


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (check --config or PROMPTPULSE_CONFIG)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        hint = ("each table and key may appear once: merge the two, and note that `key = [...]` and a "
                "`[table.key]` are the same name" if "twice" in str(e) else "fix the TOML syntax there")
        raise ConfigError(f"{path}: not valid TOML: {e} ({hint})") from None


def load(flags: dict[str, Any] | None = None, *, config_file: str | None = None,
         env: dict[str, str] | None = None) -> Settings:
    """Merge defaults < TOML file < environment < flags (flags whose value is None are 'not given')."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = config_file or env.get("PROMPTPULSE_CONFIG")
    if path:
        doc = _read_toml(path)
        for table in _TABLES:
            if table in doc:
                if not isinstance(doc[table], dict):
                    raise ConfigError(f"{path}: {table} must be a table ([{table}]), not a single value")
                values[table] = doc[table]
        processor = doc.get("processor", {})
        if not isinstance(processor, dict):
            raise ConfigError(f"{path}: processor must be a table ([processor])")
        doc = {**{k: v for k, v in doc.items() if not isinstance(v, dict)}, **processor}
        for k, v in doc.items():
            k = k.replace("-", "_")
            if k not in _FIELDS or k in _TABLES:
                raise _unknown(path, k)
            try:
                values[k] = _coerce(k, v)
            except ValueError as e:
                default = _FIELDS[k].default
                fix = f" (e.g. {k} = {json.dumps(default)}, the default)" if default is not None else ""
                raise ConfigError(f"{path}: {k}: {e}{fix}") from None
    for name in _FIELDS:
        if name in _TABLES:
            continue
        v = env.get("PROMPTPULSE_" + name.upper())
        if v is not None and v != "":
            try:
                values[name] = _coerce(name, v)
            except ValueError as e:
                raise ConfigError(f"environment PROMPTPULSE_{name.upper()}: {e}") from None
    for k, v in (flags or {}).items():
        if k in _FIELDS and v is not None:
            values[k] = _coerce(k, v)
    s = Settings(**values, config_file=path or None)
    if bool(s.tls_cert) != bool(s.tls_key):
        raise ConfigError("--tls-cert and --tls-key go together (set both, or neither)")
    return s


def check(s: Settings, *, secrets: bool = True) -> None:
    """Check the [alerts], [reports] and [evaluation] tables as `serve` will use them (``secrets=False``: an unset
    ``${VAR}`` is no error, for commands that send nothing). Raises ConfigError naming the file and key."""
    from promptpulse.evaluation.rules import load_evaluation

    from .alerts.rules import AlertConfigError, load_alerts
    from .reports import check_config

    where = s.config_file or "config"
    try:
        load_alerts(s.alerts, secrets=secrets)
        check_config(s.reports or {})
        load_evaluation(s.evaluation)
    except (AlertConfigError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def as_dict(s: Settings) -> dict[str, Any]:
    d = dataclasses.asdict(s)
    d.pop("config_file", None)
    if d.get("auth_token"):
        d["auth_token"] = "***"
    if d.get("alerts"):  # channel tables hold webhook URLs, routing keys, passwords
        d["alerts"] = {k: ("***" if k == "channels" else v) for k, v in d["alerts"].items()}
    if d.get("reports"):
        d["reports"] = {k: ("***" if k == "channels" else v) for k, v in d["reports"].items()}
    return d
