"""Run the fake provider standalone: ``python -m promptpulse.testing.fake_provider --port 8089``.

Point an SDK at it with ``OPENAI_BASE_URL=http://127.0.0.1:8089/v1`` or
``ANTHROPIC_BASE_URL=http://127.0.0.1:8089``; send ``x-fake-fault: 429`` (etc.) to inject errors.
"""

from __future__ import annotations

import argparse
import threading

from promptpulse.testing.faults import Fault
from promptpulse.testing.scenario import Latency, Scenario
from promptpulse.testing.server import FakeProvider


def _latency(ms: float, median_ms: float | None) -> Latency:
    return Latency(seconds=ms / 1000, median=median_ms / 1000 if median_ms else None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m promptpulse.testing.fake_provider", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    p.add_argument("--output-tokens", type=int, default=20)
    p.add_argument("--chunks", type=int, default=4, help="content pieces per stream")
    p.add_argument("--latency-ms", type=float, default=0.0, help="fixed part of the response latency")
    p.add_argument("--latency-median-ms", type=float, default=None, help="adds a lognormal part with this median")
    p.add_argument("--inter-chunk-ms", type=float, default=0.0)
    p.add_argument("--fault-rate", type=float, default=0.0, help="chance of a random fault per request")
    p.add_argument("--faults", default="500,429,503", help="random faults to draw from (x-fake-fault syntax)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    scenario = Scenario(
        output_tokens=args.output_tokens,
        stream_chunks=args.chunks,
        latency=_latency(args.latency_ms, args.latency_median_ms),
        inter_chunk=Latency(seconds=args.inter_chunk_ms / 1000),
        fault_rate=args.fault_rate,
        random_faults=tuple(Fault.parse_sequence(args.faults)),
        seed=args.seed,
    )
    fake = FakeProvider(scenario, host=args.host, port=args.port, verbose=args.verbose).start()
    print(
        f"fake provider on {fake.url}  OpenAI base_url {fake.openai_base_url}  Anthropic base_url "
        f"{fake.anthropic_base_url}",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        fake.stop()


if __name__ == "__main__":
    main()
