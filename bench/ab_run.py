"""Run this checkout's bench/bench_overhead.py against the promptpulse code of another tree (e.g. main's, from
``git archive main | tar -x -C /tmp/main``), to compare two versions back to back in the same run pattern:

    .venv/bin/python bench/ab_run.py /tmp/main --floor-ratio --rounds 10 --calls 200 --json

Works with the editable install: its finder's package paths are pointed at ROOT before anything is imported.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    root = str(Path(sys.argv.pop(1)).resolve())
    import __editable___promptpulse_0_1_0_finder as finder  # type: ignore[import-not-found]

    checkout = str(HERE.parent)
    for name, path in list(finder.MAPPING.items()):
        finder.MAPPING[name] = path.replace(checkout, root)
    sys.argv[0] = str(HERE / "bench_overhead.py")
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
