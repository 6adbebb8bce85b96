"""`promptpulse demo`: processor + fake provider + instrumented traffic, a progress bar, then the overview."""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from . import story

log = logging.getLogger("promptpulse.demo")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ports(keep_running: bool, host: str) -> dict[str, int]:
    """Ephemeral ports, unless the service stays up: then the usual ones when free, so `promptpulse query` and an
    app's default OTLP exporter find it."""
    wanted = {"otlp_grpc_port": 4317, "otlp_http_port": 4318, "api_port": 8321}
    if not keep_running:
        return dict.fromkeys(wanted, 0)
    return {k: (p if _port_free(host, p) else 0) for k, p in wanted.items()}


class Progress:
    """A one-line progress bar on a terminal (stdlib only); periodic plain lines otherwise."""

    def __init__(self, out: TextIO, duration: float, tty: bool | None = None) -> None:
        self.out = out
        self.duration = duration
        self.tty = out.isatty() if tty is None else tty
        self.every = max(5.0, duration / 6)
        self._last_line = -math.inf
        self._width = 0

    def update(self, elapsed: float, done: int, failed: int, in_flight: int, stored: int, burst: bool,
               final: bool = False) -> None:
        errors = f"{100.0 * failed / done:.1f}%" if done else "-"
        shown = min(elapsed, self.duration)
        stats = (f"{shown:5.1f}/{self.duration:.0f}s  calls {done:>5}  errors {errors:>5}  in flight {in_flight:>3}"
                 f"  stored {stored:>5} spans" + ("  [error burst on " + story.BURST_MODEL + "]" if burst else ""))
        if self.tty:
            width = 28
            filled = int(width * min(1.0, elapsed / self.duration)) if self.duration > 0 else width
            line = f"\r  [{'#' * filled}{'.' * (width - filled)}] {stats}"
            pad = max(0, self._width - len(line))
            self._width = len(line)
            self.out.write(line + " " * pad + ("\n" if final else ""))
            self.out.flush()
        elif final or elapsed - self._last_line >= self.every:
            self._last_line = elapsed
            print(f"  {stats}", file=self.out, flush=True)


def run(args: Any) -> int:
    out = sys.stdout
    duration, rate, seed = float(args.duration), float(args.rate), int(args.seed)
    if duration <= 0 or rate <= 0:
        print("promptpulse demo: --duration and --rate must be positive", file=sys.stderr)
        return 2
    # Loopback only: a proxy from the environment must not see (or break) the demo's traffic.
    os.environ["NO_PROXY"] = ",".join(x for x in (os.environ.get("NO_PROXY"), "127.0.0.1", "localhost") if x)
    os.environ["no_proxy"] = os.environ["NO_PROXY"]
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    data_dir = Path(args.data_dir) if args.data_dir else Path(tempfile.mkdtemp(prefix="promptpulse-demo-")) / "data"
    data_dir = data_dir.resolve()
    host = "127.0.0.1"

    from promptpulse.testing import FakeProvider

    from ..config import Settings
    from ..service import Service
    from . import alerting, overview
    from .traffic import Traffic

    settings = Settings(data_dir=str(data_dir), host=host, batch_max_age_s=0.5, **_ports(args.keep_running, host))
    print(f"PromptPulse demo: {rate:g} calls/s for {duration:g} s from '{story.SERVICE}', seed {seed}", file=out)
    t = time.monotonic()
    service = Service(settings)
    service.start()
    print(f"  processor   OTLP/HTTP {host}:{service.ports['http']}, OTLP/gRPC {host}:{service.ports['grpc']}, "
          f"API http://{host}:{service.ports['api']} — embedded ClickHouse in {data_dir} "
          f"(ready in {time.monotonic() - t:.1f} s)", file=out)
    print(f"  console     {_console_url(service)}  (the web console, up while the demo runs"
          f"{'' if args.keep_running else '; --keep-running keeps it up'})", file=out)
    fake = FakeProvider(story.scenario(seed), max_recorded=1000).start()  # bodies are kB each: keep few
    print(f"  provider    fake OpenAI + Anthropic endpoints at {fake.url} (no network)", file=out)
    traffic = Traffic(openai_base_url=fake.openai_base_url, anthropic_base_url=fake.anthropic_base_url,
                      otlp_endpoint=f"http://{host}:{service.ports['http']}/v1/traces", rate=rate, duration=duration,
                      seed=seed)
    b0, b1 = traffic.burst
    print("  traffic     real openai + anthropic SDKs, OpenAIInstrumentor/AnthropicInstrumentor -> BatchSpanProcessor"
          " -> OTLP/HTTP exporter", file=out)
    print(f"  evaluation  in the app: reply_pii (guardrail) on every chat call, answer_relevance on 20% judged by "
          f"{story.JUDGE_MODEL} (the fake provider) — docs/EVALUATION.md", file=out)
    print(f"  the story   {story.STORY_VERSION[0]} {story.STORY_VERSION[2]} ships longer summaries than "
          f"{story.STORY_VERSION[1]}; {story.BURST_MODEL} answers {int(story.BURST_ERROR_SHARE * 100)}% "
          f"{story.BURST_STATUS}s from t={b0:.0f}s to t={b1:.0f}s", file=out)
    print("", file=out, flush=True)

    interrupted = False
    try:
        interrupted = _drive(traffic, service, Progress(out, duration))
        print("  flushing the exporter and the writer ...", file=out, flush=True)
        traffic.close()
        if not service.writer.flush(60):
            print("promptpulse demo: the writer did not drain within 60 s", file=sys.stderr)
        store = service.get_store()
        start = dt.datetime.fromtimestamp(traffic.started_at, dt.timezone.utc)
        end = dt.datetime.fromtimestamp(traffic.stopped_at or time.time(), dt.timezone.utc)
        # Rules look at complete minutes; the traffic is over, so its last minute is complete: evaluate at its end.
        alerts_at = (end + dt.timedelta(minutes=1)).replace(second=0, microsecond=0)
        fired, source = alerting.evaluate(store, alerts_at, service)
        ov = overview.build(store, service=story.SERVICE, start=start, end=alerts_at,
                            traffic_seconds=max(1e-3, traffic.stopped_at - traffic.started_at), alerts=fired,
                            alerts_at=alerts_at, alerts_source=source)
        stored = int(store.query(
            "SELECT count() FROM llm_calls WHERE service = {service:String} AND timestamp >= {start:DateTime('UTC')}",
            overview.window_params(story.SERVICE, start, end)).scalar() or 0)
        tally = traffic.tally
        ev = traffic.evaluator.stats
        print("", file=out)
        print(f"Done: {tally.done} LLM calls in {traffic.stopped_at - traffic.started_at:.1f} s "
              f"({tally.failed} failed after the SDKs' retries, {tally.scores} feedback scores); "
              f"{stored} calls in the store.", file=out)
        print(f"Online evaluation: {ev['scored']} scores from the app's rules, {ev['errors']} evaluation errors "
              f"(llm_scores, source 'evaluation').", file=out)
        if stored != tally.done:
            print(f"WARNING: the app made {tally.done} calls but the store has {stored}", file=out)
        print("", file=out)
        print(overview.render(ov, color=out.isatty()), file=out)
        print("", file=out)
        _where(out, data_dir, service, args.keep_running)
        out.flush()
        if args.keep_running and not interrupted:
            _wait_for_ctrl_c(out)
        return 0 if stored == tally.done else 1
    finally:
        fake.stop()
        service.stop()


def _drive(traffic: Any, service: Any, progress: Progress) -> bool:
    """Run the traffic in a thread while drawing progress; Ctrl-C stops the traffic early (True)."""
    th = threading.Thread(target=traffic.run, name="demo-dispatcher", daemon=True)
    t0 = time.monotonic()
    th.start()
    interrupted = False
    while th.is_alive():
        try:
            th.join(0.25)
        except KeyboardInterrupt:
            interrupted = True
            traffic.stop()
        elapsed = time.monotonic() - t0
        tl = traffic.tally
        burst = traffic.burst[0] <= elapsed < traffic.burst[1]
        progress.update(elapsed, tl.done, tl.failed, tl.in_flight, service.writer.stats["inserted_spans"], burst)
    tl = traffic.tally
    progress.update(time.monotonic() - t0, tl.done, tl.failed, tl.in_flight, service.writer.stats["inserted_spans"],
                    False, final=True)
    return interrupted


def _where(out: TextIO, data_dir: Path, service: Any, keep_running: bool) -> None:
    api = f"http://{service.settings.host}:{service.ports['api']}"
    sql = ("SELECT prompt_name, prompt_version, count() AS calls, round(quantile(0.95)(latency_ms)) AS p95_ms, "
           "sum(cost_usd) AS cost FROM llm_calls GROUP BY ALL ORDER BY ALL")
    print("Where the data is", file=out)
    print(f"  embedded ClickHouse (chDB) in {data_dir}", file=out)
    print("  tables: otel_traces (raw spans), llm_calls (one row per call), llm_calls_1m / llm_calls_1h (rollups), "
          "alert_events", file=out)
    if keep_running:
        print(f"  console: open {_console_url(service)} — every section on the demo's data", file=out)
        print(f"  the service is up: API {api} (/api/metrics?prompt_id=summarize_ticket, /api/query), OTLP/HTTP "
              f"http://{service.settings.host}:{service.ports['http']}/v1/traces, OTLP/gRPC "
              f"{service.settings.host}:{service.ports['grpc']}", file=out)
        print(f"  promptpulse query \"{sql}\" --api {api}", file=out)
        print(f"  after Ctrl-C: promptpulse query \"...\" --data-dir {data_dir}", file=out)
    else:
        print(f"  promptpulse query \"{sql}\" --data-dir {data_dir}", file=out)
        print(f"  keep the service and API up for Grafana: promptpulse demo --keep-running --data-dir {data_dir}",
              file=out)
    print("  Grafana dashboards: promptpulse dashboards export DIR  (then import DIR/*.json with the ClickHouse "
          "data source plugin)", file=out)


def _console_url(service: Any) -> str:
    return f"http://{service.settings.host}:{service.ports['api']}/console/"


def _wait_for_ctrl_c(out: TextIO) -> None:
    done = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        done.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    print("\nThe service keeps running; Ctrl-C to stop.", file=out, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print("stopping ...", file=out, flush=True)
