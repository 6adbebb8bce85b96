"""deploy/: what can be checked without a container engine.

The Collector configurations, the compose file and the Dockerfile are checked against the things they must agree
with — PromptPulse's schema (table, database and column names), the `promptpulse` CLI (flags, ports, defaults), the
Grafana provisioning in dashboards/ and the repository's files — but none of them is run here (see docs/DEPLOY.md).
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml  # PyYAML, in the dev extra

from promptpulse.processor import cli
from promptpulse.processor.config import Settings
from promptpulse.processor.store.base import OTEL_TRACES_COLUMNS
from promptpulse.processor.store.schema import DEFAULT_DATABASE

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COLLECTOR_CH = DEPLOY / "otel-collector-clickhouse.yaml"
COLLECTOR_LB = DEPLOY / "otel-collector-loadbalancing.yaml"
COMPOSE = DEPLOY / "docker-compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DATASOURCE = ROOT / "dashboards" / "provisioning" / "datasources" / "clickhouse.yaml"
DASHBOARD_PROVIDER = ROOT / "dashboards" / "provisioning" / "dashboards" / "promptpulse.yaml"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DEFAULTS = Settings()

# The columns the OTel Collector contrib clickhouse exporter names in its INSERT
# (exporter/clickhouseexporter/internal/sqltemplates/traces_insert.sql). With create_schema: false it writes into
# PromptPulse's otel_traces, so every one of them must exist there.
EXPORTER_TRACES_INSERT_COLUMNS = (
    "Timestamp", "TraceId", "SpanId", "ParentSpanId", "TraceState", "SpanName", "SpanKind", "ServiceName",
    "ResourceAttributes", "ScopeName", "ScopeVersion", "SpanAttributes", "Duration", "StatusCode", "StatusMessage",
    "Events.Timestamp", "Events.Name", "Events.Attributes",
    "Links.TraceId", "Links.SpanId", "Links.TraceState", "Links.Attributes",
)


# ------------------------------------------------------------------------------------------------------ helpers
def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


_COMPOSE_VAR = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")
_COLLECTOR_VAR = re.compile(r"\$\{env:(\w+)(?::-([^}]*))?\}")


def compose_value(value: Any) -> Any:
    """Interpolate ${VAR:-default} / ${VAR} as compose would with an empty environment."""
    if isinstance(value, str):
        return _COMPOSE_VAR.sub(lambda m: m.group(2) or "", value).replace("$$", "$")
    return value


def collector_value(value: str) -> str:
    return _COLLECTOR_VAR.sub(lambda m: m.group(2) or "", value)


def compose() -> dict[str, Any]:
    return load(COMPOSE)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: compose_value(str(v)) for k, v in env.items()}


def argv(value: Any) -> list[str]:
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [compose_value(str(v)) for v in value]


def published_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for p in service.get("ports", []):
        host, _, container = str(p).rpartition(":")
        assert host, f"{p}: publish as HOST:CONTAINER"
        ports.add(int(container.split("/")[0]))
    return ports


def host_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(p).rpartition(":")[0].rpartition(":")[2]) for p in service.get("ports", [])}


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    for v in service.get("volumes", []):
        source, target = str(v).split(":")[:2]
        if source.startswith((".", "/")):
            yield (DEPLOY / source).resolve(), target


def parser() -> argparse.ArgumentParser:
    """The `promptpulse` argument parser, built as cli.main builds it."""
    p = argparse.ArgumentParser(prog="promptpulse")
    sub = p.add_subparsers(dest="command", required=True)
    for name, cmd in cli.COMMANDS.items():
        cmd.add_arguments(sub.add_parser(name))
    return p


def parse_cli(args: list[str]) -> argparse.Namespace:
    assert args and args[0] == "promptpulse", args
    try:
        return parser().parse_args(args[1:])
    except SystemExit as e:  # argparse exits on unknown flags or bad values
        raise AssertionError(f"`{shlex.join(args)}` is not a valid promptpulse command line") from e


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def instructions(name: str) -> list[str]:
    return [rest for word, rest in dockerfile() if word == name]


def serve_argv_in_image() -> list[str]:
    (entry,) = instructions("ENTRYPOINT")
    return json.loads(entry)


def settings_env_names() -> set[str]:
    return {"PROMPTPULSE_" + name.upper() for name in Settings.__dataclass_fields__} | {
        "PROMPTPULSE_CONFIG", "PROMPTPULSE_LOG_LEVEL"}


def otel_traces_columns_in_schema() -> set[str]:
    """Column names of otel_traces from schemas/001_otel_traces.sql, Nested ones flattened (Events.Name, …)."""
    sql = (ROOT / "schemas" / "001_otel_traces.sql").read_text(encoding="utf-8")
    body = sql.split("otel_traces${LOCAL}", 1)[1].split("ENGINE", 1)[0]
    cols, nested = set(), None
    for line in body.splitlines():
        line = line.strip()
        m = re.match(r"^(\w+)\s+Nested\s*\($", line)
        if m:
            nested = m.group(1)
            continue
        if nested and line.startswith(")"):
            nested = None
            continue
        m = re.match(r"^(\w+)\s+[A-Z]", line)
        if m and m.group(1) not in ("INDEX", "CONSTRAINT", "PROJECTION"):
            cols.add(f"{nested}.{m.group(1)}" if nested else m.group(1))
    return cols


# ------------------------------------------------------------------------------------------------ all the YAML
DEPLOY_YAML = sorted(DEPLOY.glob("*.yaml"))


def test_deploy_files_are_there() -> None:
    assert {p.name for p in DEPLOY_YAML} >= {COLLECTOR_CH.name, COLLECTOR_LB.name, COMPOSE.name}
    assert DOCKERFILE.is_file()


@pytest.mark.parametrize("path", DEPLOY_YAML, ids=lambda p: p.name)
def test_yaml_parses_to_a_mapping(path: Path) -> None:
    assert isinstance(load(path), dict)
    assert "\t" not in path.read_text(encoding="utf-8")


# -------------------------------------------------------------------------------------------- OTel Collectors
COLLECTORS = [COLLECTOR_CH, COLLECTOR_LB]


@pytest.mark.parametrize("path", COLLECTORS, ids=lambda p: p.name)
def test_collector_pipelines_reference_defined_components(path: Path) -> None:
    cfg = load(path)
    assert set(cfg) <= {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
    service = cfg["service"]
    for ext in service.get("extensions", []):
        assert ext in cfg.get("extensions", {}), f"service.extensions: {ext} is not defined"
    assert service["pipelines"]
    for name, pipeline in service["pipelines"].items():
        assert name.split("/")[0] in ("traces", "metrics", "logs"), name
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in (cfg.get(kind) or {}), f"{name}: {kind[:-1]} {component} is not defined"
        procs = pipeline.get("processors", [])
        if "memory_limiter" in procs:
            assert procs[0] == "memory_limiter", "memory_limiter must come first"
    used = {c for p in service["pipelines"].values() for kind in ("receivers", "processors", "exporters")
            for c in p.get(kind, [])}
    defined = {c for kind in ("receivers", "processors", "exporters") for c in (cfg.get(kind) or {})}
    assert defined == used, f"defined but unused: {defined - used}"


@pytest.mark.parametrize("path", COLLECTORS, ids=lambda p: p.name)
def test_collector_receives_otlp_on_the_processor_ports(path: Path) -> None:
    """Apps point at a Collector exactly as at a processor: 4317 gRPC, 4318 HTTP."""
    protocols = load(path)["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(f":{DEFAULTS.otlp_grpc_port}")
    assert protocols["http"]["endpoint"].endswith(f":{DEFAULTS.otlp_http_port}")
    # The processor accepts requests up to max_body_bytes; a Collector in front must accept at least as much.
    assert protocols["grpc"]["max_recv_msg_size_mib"] * 1024 * 1024 >= DEFAULTS.max_body_bytes


@pytest.mark.parametrize("path", COLLECTORS, ids=lambda p: p.name)
def test_collector_env_vars_are_documented_and_supplied(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    header = text.split("\n\n", 1)[0] + text.split("Environment:", 1)[1].split("\n\n", 1)[0]
    used = {m.group(1): m.group(2) for m in _COLLECTOR_VAR.finditer(text)}
    assert used
    for var in used:
        assert var in header, f"{path.name}: ${{env:{var}}} is not listed under 'Environment:'"
    # the compose service running this config supplies every variable without a default
    (svc,) = [s for s in services().values()
              if any(src == path.resolve() for src, _ in bind_mounts(s))]
    missing = {v for v, default in used.items() if default is None} - set(env_of(svc))
    assert not missing, f"compose does not set {missing} for {path.name}"


def test_clickhouse_exporter_writes_promptpulse_otel_traces() -> None:
    cfg = load(COLLECTOR_CH)
    ch = cfg["exporters"]["clickhouse"]
    assert ch["create_schema"] is False, "PromptPulse's schema owns the tables"
    assert ch["database"] == DEFAULT_DATABASE
    assert ch["traces_table_name"] == "otel_traces"
    sql = (ROOT / "schemas" / "001_otel_traces.sql").read_text(encoding="utf-8")
    assert "CREATE TABLE IF NOT EXISTS ${DB}.otel_traces${LOCAL}" in sql
    assert ch.get("ttl", 0) in (0, "0"), "retention is the TTL in schemas/001, not the exporter's"
    endpoint = urlsplit(collector_value(ch["endpoint"]))
    assert endpoint.scheme in ("tcp", "clickhouse") and endpoint.port == 9000, "native protocol"
    assert endpoint.hostname in services(), "the default endpoint is the compose ClickHouse service"


def test_clickhouse_exporter_insert_columns_exist_in_otel_traces() -> None:
    in_schema = otel_traces_columns_in_schema()
    assert set(EXPORTER_TRACES_INSERT_COLUMNS) <= in_schema
    # and they are the very columns the processor writes, in the same order
    assert tuple(EXPORTER_TRACES_INSERT_COLUMNS) == OTEL_TRACES_COLUMNS


def test_clickhouse_exporter_queue_and_retry() -> None:
    cfg = load(COLLECTOR_CH)
    ch = cfg["exporters"]["clickhouse"]
    queue, retry = ch["sending_queue"], ch["retry_on_failure"]
    assert queue["enabled"] and retry["enabled"]
    assert queue["block_on_overflow"] is True, "back-pressure, not dropped spans, when ClickHouse is slow"
    storage = queue["storage"]
    assert storage in cfg["extensions"] and storage in cfg["service"]["extensions"]
    # batching: inside the queue (not a batch processor, which would hold acknowledged spans in memory only)
    assert queue["batch"]["min_size"] >= 1000 and queue["batch"]["max_size"] >= queue["batch"]["min_size"]
    assert "batch" not in cfg.get("processors", {})
    # a retried batch must be dropped by the table's deduplication window, not counted twice by the MVs
    assert ch["async_insert"] is False
    assert ch["connection_params"]["insert_deduplicate"] == "1"
    assert ch["connection_params"]["deduplicate_blocks_in_dependent_materialized_views"] == "1"
    assert "${DEDUP_WINDOW}" in (ROOT / "schemas" / "001_otel_traces.sql").read_text(encoding="utf-8")


def test_loadbalancing_exporter_routes_by_trace_id_to_processors() -> None:
    cfg = load(COLLECTOR_LB)
    lb = cfg["exporters"]["loadbalancing"]
    assert lb["routing_key"] == "traceID"
    otlp = lb["protocol"]["otlp"]
    assert "endpoint" not in otlp, "the loadbalancing exporter fills in each backend's endpoint"
    assert otlp["retry_on_failure"]["enabled"]
    # the processor's bearer auth: "Authorization: Bearer <--auth-token>"
    assert otlp["headers"]["Authorization"] == "Bearer ${env:PROMPTPULSE_AUTH_TOKEN}"
    resolver = lb["resolver"]
    assert len(resolver) == 1 and next(iter(resolver)) in ("dns", "static")
    if "dns" in resolver:
        assert resolver["dns"]["port"] == DEFAULTS.otlp_grpc_port
        host = collector_value(resolver["dns"]["hostname"])
        pool = services()[host]  # the compose service the dns name resolves to
        assert pool["build"]["dockerfile"] == "deploy/Dockerfile"
    else:
        for hostname in resolver["static"]["hostnames"]:
            assert hostname.endswith(f":{DEFAULTS.otlp_grpc_port}")
    # the alternative shown in the comments is a valid static resolver too
    commented = re.search(r"^      # static:\n((?:      #.*\n)+)", COLLECTOR_LB.read_text(encoding="utf-8"), re.M)
    assert commented
    static = yaml.safe_load(re.sub(r"^      # ?", "", commented.group(0), flags=re.M))["static"]
    assert all(h.endswith(f":{DEFAULTS.otlp_grpc_port}") for h in static["hostnames"])


# ----------------------------------------------------------------------------------------------------- compose
def test_compose_services_and_ports() -> None:
    s = services()
    assert {"clickhouse", "schema", "processor", "grafana"} <= set(s)
    assert published_ports(s["processor"]) == {DEFAULTS.otlp_grpc_port, DEFAULTS.otlp_http_port, DEFAULTS.api_port}
    assert 8123 in published_ports(s["clickhouse"])
    assert published_ports(s["grafana"]) == {3000}
    used: dict[int, str] = {}
    for name, svc in s.items():
        for port in host_ports(svc):
            assert port not in used, f"host port {port} published by {used[port]} and {name}"
            used[port] = name
    # default services (no profile) are what `docker compose up` starts
    assert not {n for n in ("clickhouse", "schema", "processor", "grafana") if s[n].get("profiles")}


def test_compose_bind_mounts_and_build_point_at_repository_files() -> None:
    for name, svc in services().items():
        for source, target in bind_mounts(svc):
            assert source.exists(), f"{name}: {source} does not exist"
            assert source.is_relative_to(ROOT), f"{name}: {source} is outside the repository"
            assert target.startswith("/")
        if "build" in svc:
            context = (DEPLOY / svc["build"]["context"]).resolve()
            assert context == ROOT
            assert (context / svc["build"]["dockerfile"]).resolve() == DOCKERFILE
    declared = set(compose().get("volumes") or {})
    for name, svc in services().items():
        for v in svc.get("volumes", []):
            source = str(v).split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: named volume {source} is not declared"


def test_compose_depends_on_and_healthchecks() -> None:
    s = services()
    image_has_healthcheck = bool(instructions("HEALTHCHECK"))
    for name, svc in s.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in s, f"{name} depends on undefined {dep}"
            if cond["condition"] == "service_healthy":
                hc = s[dep].get("healthcheck")
                own = hc is not None and not hc.get("disable")
                assert own or ("build" in s[dep] and image_has_healthcheck), f"{dep} has no healthcheck"
            if cond["condition"] == "service_completed_successfully":
                assert s[dep].get("restart", "no") == "no", f"{dep} is a one-shot job"
    for name in ("clickhouse", "processor", "grafana"):
        assert s[name]["healthcheck"]["test"], name
    assert "/healthz" in " ".join(s["processor"]["healthcheck"]["test"])
    assert str(DEFAULTS.api_port) in " ".join(s["processor"]["healthcheck"]["test"])


def _processor_services() -> dict[str, dict[str, Any]]:
    return {n: svc for n, svc in services().items() if svc.get("build") and n not in ("schema", "grafana-provisioning")}


def test_compose_processor_command_lines_are_valid() -> None:
    s = services()
    procs = _processor_services()
    assert "processor" in procs and "processor-pool" in procs
    for name, svc in procs.items():
        assert "entrypoint" not in svc, "the image's ENTRYPOINT (promptpulse serve --host 0.0.0.0) is used"
        args = parse_cli(serve_argv_in_image() + argv(svc.get("command")))
        assert args.command == "serve" and args.host == "0.0.0.0"
        assert args.clickhouse_url, f"{name} must write to the ClickHouse server"
        for var in env_of(svc):
            if var.startswith("PROMPTPULSE_"):
                assert var in settings_env_names(), f"{name}: {var} is not a setting (processor/config.py)"
        assert env_of(svc).get("PROMPTPULSE_APPLY_SCHEMA") == "false"
        assert svc["depends_on"]["schema"]["condition"] == "service_completed_successfully"
    schema = s["schema"]
    args = parse_cli(argv(schema["entrypoint"]) + argv(schema["command"]))
    assert args.command == "schema" and args.action == "apply" and args.clickhouse_url


def test_compose_clickhouse_url_database_and_credentials_agree() -> None:
    s = services()
    ch_env = env_of(s["clickhouse"])
    urls = [parse_cli(serve_argv_in_image() + argv(svc.get("command"))).clickhouse_url
            for svc in _processor_services().values()]
    urls.append(parse_cli(argv(s["schema"]["entrypoint"]) + argv(s["schema"]["command"])).clickhouse_url)
    for url in urls:
        u = urlsplit(url)
        assert u.hostname == "clickhouse" and u.port == 8123
        # `promptpulse schema apply` applies to promptpulse's default database; serve writes to the URL's
        assert u.path.strip("/") == DEFAULT_DATABASE
        assert (u.username, u.password) == (ch_env["CLICKHOUSE_USER"], ch_env["CLICKHOUSE_PASSWORD"])
    assert ch_env["CLICKHOUSE_DB"] == DEFAULT_DATABASE
    # Grafana's data source reads the same database with the same user
    ds = load(DATASOURCE)["datasources"][0]
    assert ds["jsonData"]["defaultDatabase"] == DEFAULT_DATABASE
    gf_env = env_of(s["grafana"])
    assert gf_env["PROMPTPULSE_CLICKHOUSE_HOST"] == "clickhouse"
    assert gf_env["PROMPTPULSE_CLICKHOUSE_USER"] == ch_env["CLICKHOUSE_USER"]
    assert gf_env["PROMPTPULSE_CLICKHOUSE_PASSWORD"] == ch_env["CLICKHOUSE_PASSWORD"]
    assert ds["jsonData"]["port"] in (9000, 8123)
    # the Collector writing otel_traces directly uses the same user
    collector_env = env_of(s["otel-collector"])
    assert collector_env["CLICKHOUSE_USER"] == ch_env["CLICKHOUSE_USER"]
    assert collector_env["CLICKHOUSE_PASSWORD"] == ch_env["CLICKHOUSE_PASSWORD"]


def test_compose_grafana_mounts_promptpulse_provisioning(tmp_path: Path) -> None:
    """The one-shot grafana-provisioning service exports into a volume that Grafana reads as its provisioning path
    and dashboard folder; run the same export here and follow Grafana's paths into it."""
    from promptpulse.dashboards import build, grafana_files

    s = services()
    job, grafana = s["grafana-provisioning"], s["grafana"]
    args = parse_cli(argv(job["entrypoint"]) + argv(job["command"]))
    assert (args.command, args.action) == ("dashboards", "export")
    assert grafana["depends_on"]["grafana-provisioning"]["condition"] == "service_completed_successfully"
    volume, export_dir = str(job["volumes"][0]).split(":")[:2]
    assert export_dir == args.directory
    mount = next(str(v).split(":")[1] for v in grafana["volumes"] if str(v).startswith(volume + ":"))
    # the export, as the job runs it (every channel set, as a .env might)
    job_env = env_of(job)
    channels = grafana_files.channels_from_env({k: "set" for k in job_env})
    assert {c.env for c in channels} == {c.env for c in grafana_files.CHANNELS} == set(job_env)
    build.export(tmp_path, trace_url=args.trace_url, dashboards_path=args.dashboards_path, channels=channels)
    inside = lambda path: tmp_path / Path(path).relative_to(export_dir if path.startswith(export_dir)  # noqa: E731
                                                           else mount)
    env = env_of(grafana)
    provisioning = inside(env["GF_PATHS_PROVISIONING"])
    ds_file = provisioning / "datasources" / "promptpulse.yaml"
    ds = load(ds_file)["datasources"][0]
    plugins = env.get("GF_PLUGINS_PREINSTALL", "") + "," + env.get("GF_INSTALL_PLUGINS", "")
    assert ds["type"] in [p.split("@")[0] for p in plugins.split(",")], "the data source plugin is installed"
    # every ${VAR} the provisioning files use is set in Grafana's environment (the channels pass through)
    for f in provisioning.rglob("*.yaml"):
        text = "\n".join(ln for ln in f.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("#"))
        for var in re.findall(r"\$\{(\w+)\}", text):
            assert var in env, f"grafana: {var} (used by {f.name}) is not set"
    for var in ("PROMPTPULSE_CLICKHOUSE_HOST", "PROMPTPULSE_CLICKHOUSE_USER", "PROMPTPULSE_CLICKHOUSE_PASSWORD"):
        assert env[var]
    # every dashboard sits where the provider's path points
    path = load(provisioning / "dashboards" / "promptpulse.yaml")["providers"][0]["options"]["path"]
    names = sorted(p.name for p in inside(path).glob("*.json"))
    assert names == sorted(p.name for p in (ROOT / "dashboards").glob("*.json")) and names
    # the alert rules use the uid of the provisioned data source; the checked-in data source file is the same
    assert ds["uid"] in (provisioning / "alerting" / "promptpulse-rules.yaml").read_text(encoding="utf-8")
    assert load(ds_file) == load(DATASOURCE)
    assert load(provisioning / "alerting" / "promptpulse-notifications.yaml")["contactPoints"]

def test_compose_collectors_mount_their_configs() -> None:
    s = services()
    for svc_name, cfg in (("otel-collector", COLLECTOR_CH), ("otel-loadbalancer", COLLECTOR_LB)):
        svc = s[svc_name]
        assert svc["image"].startswith("otel/opentelemetry-collector-contrib:")
        assert svc.get("profiles"), f"{svc_name} is optional"
        mounts = dict(bind_mounts(svc))
        target = mounts[cfg.resolve()]
        assert f"--config={target}" in argv(svc["command"])
        assert published_ports(svc) == {DEFAULTS.otlp_grpc_port, DEFAULTS.otlp_http_port}
    # the persistent queue directory of the direct Collector is on a volume
    queue_dir = collector_value(load(COLLECTOR_CH)["extensions"]["file_storage/queue"]["directory"])
    targets = [str(v).split(":")[1] for v in s["otel-collector"]["volumes"]]
    assert any(queue_dir.startswith(t.rstrip("/") + "/") for t in targets)


# -------------------------------------------------------------------------------------------------- Dockerfile
def test_dockerfile_entrypoint_ports_and_user() -> None:
    entry = serve_argv_in_image()
    assert entry == ["promptpulse", "serve", "--host", "0.0.0.0"]
    assert entry[0] in PYPROJECT["project"]["scripts"]
    args = parse_cli(entry)
    assert args.command == "serve" and args.host == "0.0.0.0"
    exposed = {int(p) for rest in instructions("EXPOSE") for p in rest.split()}
    assert exposed == {DEFAULTS.otlp_grpc_port, DEFAULTS.otlp_http_port, DEFAULTS.api_port}
    users = instructions("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (hc,) = instructions("HEALTHCHECK")
    assert "/healthz" in hc and str(DEFAULTS.api_port) in hc
    for rest in instructions("ENV"):
        for name in re.findall(r"\b(PROMPTPULSE_\w+)=", rest):
            assert name in settings_env_names(), f"ENV {name} is not a setting (processor/config.py)"
    froms = instructions("FROM")
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim\b", f) for f in froms)
    (py_arg,) = [a for a in instructions("ARG") if a.startswith("PYTHON_VERSION=")]
    minimum = PYPROJECT["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, py_arg.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def test_dockerfile_copies_what_the_package_build_needs() -> None:
    copied = set()
    for rest in instructions("COPY"):
        if rest.startswith("--from"):
            continue
        *sources, _dest = rest.split()
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: not in the repository"
            copied.add(src.rstrip("/"))
    package_dirs = PYPROJECT["tool"]["setuptools"]["package-dir"].values()
    needed = {"pyproject.toml", PYPROJECT["project"]["readme"], *package_dirs}
    assert needed <= copied, f"not copied into the image: {needed - copied}"
    assert any('pip install ".[processor]"' in r for r in instructions("RUN"))
    assert "processor" in PYPROJECT["project"]["optional-dependencies"]
    # the per-Dockerfile ignore file must not hide any of it
    ignore = DEPLOY / "Dockerfile.dockerignore"
    patterns = [ln.strip() for ln in ignore.read_text(encoding="utf-8").splitlines()
                if ln.strip() and not ln.startswith("#")]
    for src in copied:
        for pat in patterns:
            assert pat.removeprefix("**/") != src, f"{ignore.name} excludes {src}"


# -------------------------------------------------------------------------------------------------------- docs
def test_deploy_doc_names_every_file_and_says_what_was_run() -> None:
    doc = (ROOT / "docs" / "DEPLOY.md").read_text(encoding="utf-8")
    for path in (*DEPLOY_YAML, DOCKERFILE):
        assert f"deploy/{path.name}" in doc, path.name
    assert "tests/test_deploy.py" in doc
    assert "no container engine" in doc.lower()
    assert "schema print --cluster" in doc
