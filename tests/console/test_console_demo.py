"""`promptpulse demo --keep-running` prints the console's URL on a line that says "console"; the page at that URL
shows every section filled with the demo's numbers; Ctrl-C stops it."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from console_page import Page

pytestmark = pytest.mark.slow

BIN = str(Path(sys.executable).with_name("promptpulse"))


def test_demo_keeps_the_console_up_with_every_section_filled(browser: Any, tmp_path: Path) -> None:
    proc = subprocess.Popen([BIN, "demo", "--duration", "8", "--rate", "25", "--keep-running", "--seed", "11",
                             "--data-dir", str(tmp_path / "data")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
    out: list[str] = []
    try:
        while not any("Ctrl-C to stop" in line for line in out):
            try:
                out.append(lines.get(timeout=150))
            except queue.Empty:
                pytest.fail("the demo did not get to 'Ctrl-C to stop':\n" + "".join(out))
            assert proc.poll() is None or not lines.empty(), "".join(out)
        text = "".join(out)
        urls = [m.group(0) for line in out if "console" in line
                for m in [re.search(r"http://[\d.]+:\d+/console/", line)] if m]
        assert len(urls) == 2 and len(set(urls)) == 1, text  # at start-up and in "Where the data is"
        done = int(re.search(r"Done: (\d+) LLM calls", text).group(1))  # type: ignore[union-attr]
        base = urls[0].removesuffix("/console/")
        page = Page(browser, base)
        pg = page.open("?range=1h", token=None)
        assert page.value("Requests") == done
        assert pg.locator("#overview .tile").count() >= 15
        assert pg.locator("#performance canvas").count() >= 5
        assert pg.locator("#breakdown tbody tr").count() >= 3
        pg.wait_for_selector("#compare table.compare")
        # the demo evaluates its rules as of the end of the traffic's last minute (up to a minute ahead): the alert
        # events are in the range once that minute has passed, and the rules fire at different evaluations (under
        # load the latency rule's event can be shown before the burst's 5xx one)
        deadline, refreshes = time.monotonic() + 90, 1
        while "http_5xx" not in pg.inner_text("#alerts"):
            assert time.monotonic() < deadline, pg.inner_text("#alerts")
            pg.wait_for_timeout(5000)
            pg.click('[data-preset="1h"]')
            refreshes += 1
            page.wait_loaded(refreshes)
        assert pg.locator("#cost .tile").count() >= 5 and pg.locator("#sla .tile").count() >= 5
        assert page.value("Scores", "quality") > 0
        page.shot("demo")
        page.shot("demo-first-screen", full_page=False)  # docs/img/console.png in the README
        page.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, "".join(out)
