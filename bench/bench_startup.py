"""What PromptPulse's instrumentors add to an auto-instrumented app's start-up, in milliseconds.

Runs ``opentelemetry-instrument python -c "import openai"`` (or ``--app``) as fresh processes, alternating two
settings in one run: PromptPulse's entry points disabled (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` lists all ten)
and enabled; any other instrumentation installed (OpenLLMetry is a dev dependency) is disabled on both sides, and the
exporters are ``none``, so nothing but our instrumentors differs. Reports, on the wall clock and in CPU time (user +
system of the child, less disturbed by a loaded machine), the median of each and the difference of the medians, and
the time nine plain processes each take to load and instrument() the ten instrumentors (our part alone, without the
noise of two whole interpreter start-ups); ``--imports`` also lists the LLM SDK modules each setting ends up
importing.

    .venv/bin/python bench/bench_startup.py                        # 15 pairs, the app imports openai
    .venv/bin/python bench/bench_startup.py --runs 31 --app "import anthropic"
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import entry_points
from pathlib import Path

SDK_MODULES = ("openai", "anthropic", "google.genai", "botocore", "mistralai", "cohere", "litellm", "ollama", "groq")
SDK_MODULES += ("langchain_core",)


def entry_points_named(ours: bool) -> list[str]:
    names = (ep.name for ep in entry_points(group="opentelemetry_instrumentor"))
    return sorted(name for name in names if name.startswith("promptpulse_") is ours)


# Byte-code cached as in an installed package (this machine sets PYTHONDONTWRITEBYTECODE, and an editable install's
# modules would otherwise be compiled on every start), outside the work tree.
PYCACHE = str(Path(tempfile.gettempdir()) / "promptpulse-bench-pycache")


def environment(disabled: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none")
    # Other instrumentations installed (OpenLLMetry is a dev dependency) are off on both sides.
    off = entry_points_named(ours=False) + (entry_points_named(ours=True) if disabled else [])
    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = ",".join(off)
    return env


def command(app: str) -> list[str]:
    cli = Path(sys.executable).with_name("opentelemetry-instrument")
    return [str(cli), sys.executable, "-c", app]


def run_once(app: str, disabled: bool) -> tuple[float, float]:
    """(wall, CPU) seconds of one process; CPU (user + system, from the kernel) is what a shared machine's load
    disturbs least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command(app), env=environment(disabled), check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imported(app: str, disabled: bool) -> list[str]:
    probe = f"{app}\nimport sys, json\nprint(json.dumps([m for m in {SDK_MODULES!r} if m in sys.modules]))"
    done = subprocess.run(command(probe), env=environment(disabled), check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


INSTRUMENT_ALL = """
import time
# What opentelemetry-instrument has imported before it loads the instrumentors.
import opentelemetry.distro, opentelemetry.instrumentation.auto_instrumentation._load, opentelemetry.sdk.trace
import opentelemetry.sdk.metrics, opentelemetry.instrumentation.instrumentor, opentelemetry.instrumentation.utils
from importlib.metadata import entry_points
t0, c0 = time.perf_counter(), time.process_time()
for ep in entry_points(group="opentelemetry_instrumentor"):
    if ep.name.startswith("promptpulse_"):
        ep.load()().instrument()
print((time.perf_counter() - t0) * 1000, (time.process_time() - c0) * 1000)
"""


def instrument_all_ms() -> tuple[float, float]:
    """Inside one plain process that has imported what opentelemetry-instrument imports first: load the ten entry
    points and instrument() them (our part of start-up alone)."""
    done = subprocess.run(
        [sys.executable, "-c", INSTRUMENT_ALL], env=environment(), check=True, capture_output=True, text=True
    )
    wall, cpu = done.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=15, help="pairs of processes (disabled, enabled), alternating")
    parser.add_argument("--app", default="import openai", help="the program opentelemetry-instrument runs")
    parser.add_argument("--imports", action="store_true", help="also list the SDK modules each setting imports")
    args = parser.parse_args()

    run_once(args.app, True)  # warm the file cache and the .pyc files
    run_once(args.app, False)
    samples: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for i in range(args.runs):
        order = (True, False) if i % 2 == 0 else (False, True)  # ABBA: drift hits both sides alike
        for disabled in order:
            samples[disabled].append(run_once(args.app, disabled))
    result: dict[str, object] = {"app": args.app, "runs": args.runs}
    for clock, index in (("wall", 0), ("cpu", 1)):
        off = [s[index] * 1000 for s in samples[True]]
        on = [s[index] * 1000 for s in samples[False]]
        result[clock] = {
            "disabled_median_ms": round(statistics.median(off), 1),
            "enabled_median_ms": round(statistics.median(on), 1),
            "added_ms": round(statistics.median(on) - statistics.median(off), 1),
            "disabled_range_ms": [round(min(off), 1), round(max(off), 1)],
            "enabled_range_ms": [round(min(on), 1), round(max(on), 1)],
        }
    instrument_all_ms()  # warm
    ours = [instrument_all_ms() for _ in range(9)]
    result["instrument_all_in_process_median_ms"] = {
        "wall": round(statistics.median(w for w, _ in ours), 1),
        "cpu": round(statistics.median(c for _, c in ours), 1),
    }
    if args.imports:
        result["disabled_imports"] = imported(args.app, True)
        result["enabled_imports"] = imported(args.app, False)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
