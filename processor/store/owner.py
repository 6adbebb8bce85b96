"""Who holds an embedded data dir. chDB lets one process open a directory; `promptpulse serve` writes
``<data_dir>/promptpulse-serve.json`` (pid, API URL) while it runs, so a command that tries to open the same
directory can say so and show the command that asks the service instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FILE = "promptpulse-serve.json"


class DataDirInUse(RuntimeError):
    """The data dir belongs to a running `promptpulse serve`; ``api`` is its API URL (None when unknown)."""

    def __init__(self, data_dir: str, pid: int | None, api: str | None) -> None:
        self.data_dir, self.pid, self.api = data_dir, pid, api
        who = f"`promptpulse serve` (pid {pid}, API {api})" if pid else "another process (a `promptpulse serve`?)"
        ask = (f"leave out --data-dir, or pass --api {api}, to ask the running service" if api
               else "stop that process, or ask the running service with --api URL")
        super().__init__(f"the data dir {data_dir} is in use by {who}: {ask}")


def claim(data_dir: str | os.PathLike[str], api: str) -> Path:
    path = Path(data_dir) / FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "api": api}))
    tmp.replace(path)
    return path


def release(data_dir: str | os.PathLike[str]) -> None:
    path = Path(data_dir) / FILE
    try:
        if _read(path).get("pid") == os.getpid():
            path.unlink()
    except OSError:
        pass


def holder(data_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The live `serve` process (another one) holding ``data_dir``, else None."""
    info = _read(Path(data_dir) / FILE)
    pid = info.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or not _alive(pid):
        return None
    return info


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:  # a pid reused by another program after a crash is not a holder (Linux tells; elsewhere trust the pid)
        return b"promptpulse" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
