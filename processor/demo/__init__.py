"""`promptpulse demo`: the whole pipeline in a minute, on one machine, without network.

Starts the processor on the embedded store, a fake OpenAI + Anthropic provider with per-model latency
distributions and injected faults, and a traffic generator driving the real openai and anthropic SDKs instrumented as
a user's app would be; shows a progress bar, then an overview queried from the store (per-prompt KPIs, the version
comparison with its winner, the alerts that fired, where the data is). Modules: story (cast and plot), traffic (the
instrumented app), overview (queries and rendering), alerting (rule evaluation), runner (orchestration).
"""

from __future__ import annotations

import argparse

HELP = "run the processor, a fake LLM provider and instrumented SDK traffic for a minute, then show the overview"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--duration", type=float, default=45.0, metavar="SECONDS", help="traffic duration (default 45)")
    p.add_argument("--rate", type=float, default=20.0, metavar="CALLS_PER_S",
                   help="LLM calls per second, Poisson arrivals (default 20)")
    p.add_argument("--keep-running", dest="keep_running", action="store_true",
                   help="leave the service, API and web console up after the overview, until Ctrl-C")
    p.add_argument("--data-dir", dest="data_dir",
                   help="where the embedded store keeps the data (default: a fresh temporary directory)")
    p.add_argument("--seed", type=int, default=7, help="seed of the traffic mix (default 7)")


def run(args: argparse.Namespace) -> int:
    from .runner import run as _run

    return _run(args)


__all__ = ["HELP", "add_arguments", "run"]
