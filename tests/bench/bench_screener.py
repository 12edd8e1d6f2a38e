"""Keystrokes and seconds to clear ten pending senders (mixed allow/deny) on the Pending page.

    .venv/bin/python tests/bench/bench_screener.py [--runs 3]

A real gateway process with ten pending senders; the main window (1,024 x 720) in this process, driven
by QTest key presses as a keyboard user would: top to bottom, one decision per sender (the plan below:
allow, deny, allow the domain), and whatever keys it takes to have the right sender selected first
(Space when nothing is selected, Home to the top row). Each step waits until the decided row is gone,
as a person would. Counted: every key press; timed: from the first key to an empty list.

Before/after: run this file with another checkout's code, e.g. main's:

    git -C /work/wt/screener worktree add --detach /tmp/screener/main main
    PYTHONPATH=/tmp/screener/main/app .venv/bin/python tests/bench/bench_screener.py

(the keys used exist on both: A approve, D deny, Shift+A allow the domain).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.support.gateway import GatewayProcess  # noqa: E402

PLAN = ["A", "D", "A", "A", "D", "Shift+A", "A", "D", "A", "D"]  # per sender, top to bottom


def one_run() -> tuple[int, float, list[str]]:
    from PySide6.QtCore import QEventLoop, Qt, QTimer
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    import sendergate
    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.main_window import MainWindow
    from sendergate.desktop.settings import Settings
    from sendergate.desktop.stream import StreamFollower

    app = QApplication.instance() or QApplication([])
    g = GatewayProcess()
    ini = Path(f"/tmp/sendergate-bench-screener-{os.getpid()}.ini")
    keys: list[str] = []
    try:
        user, token = g.store.add_user("alice@example.org")
        for i in range(10):
            g.store.open_challenge(user.id, "alice@example.org", f"person{i}@sender{i}.example", ttl=86400,
                                   subject=f"Hello {i}")
            time.sleep(0.01)  # distinct first-seen times
        g.start(timeout=60)
        client = GatewayClient(g.http_url, token, timeout=30)
        window = MainWindow(client, Settings.at_path(str(ini)),
                            stream=StreamFollower(client, first_delay=0.2, max_delay=1.0, heartbeat=1))
        window.resize(1024, 720)
        window.show()
        window.activateWindow()
        window.start()
        page = window.show_page("pending")

        def pump(ms: int = 10) -> None:
            loop = QEventLoop()
            QTimer.singleShot(ms, loop.quit)
            loop.exec()

        deadline = time.monotonic() + 60
        while not (page.loaded and page.model.rowCount() == 10):
            if time.monotonic() > deadline:
                raise SystemExit("bench: the page did not show ten pending senders")
            pump()
        pump(300)
        table = page.table
        table.setFocus()
        names = {"A": (Qt.Key.Key_A, Qt.KeyboardModifier.NoModifier),
                 "D": (Qt.Key.Key_D, Qt.KeyboardModifier.NoModifier),
                 "Shift+A": (Qt.Key.Key_A, Qt.KeyboardModifier.ShiftModifier),
                 "Home": (Qt.Key.Key_Home, Qt.KeyboardModifier.NoModifier),
                 "Space": (Qt.Key.Key_Space, Qt.KeyboardModifier.NoModifier),
                 "Down": (Qt.Key.Key_Down, Qt.KeyboardModifier.NoModifier),
                 "Up": (Qt.Key.Key_Up, Qt.KeyboardModifier.NoModifier)}

        def press(name: str) -> None:
            key, mod = names[name]
            QTest.keyClick(table, key, mod)
            keys.append(name)
            pump(1)

        def selected_rows() -> list[int]:
            return sorted(i.row() for i in table.selectionModel().selectedRows())

        t0 = time.perf_counter()
        for decision in PLAN:
            # the sender to decide is the top row (the ones above were decided)
            for _ in range(20):
                rows = selected_rows()
                if rows == [0]:
                    break
                # nothing (or several) selected: Space selects the current row; another row: Home
                press("Space" if not rows or len(rows) > 1 else "Home")
            before = page.model.rowCount()
            press(decision)
            while page.model.rowCount() >= before:
                if time.monotonic() > deadline + 120:
                    raise SystemExit(f"bench: {decision} did not decide (keys so far: {keys})")
                pump(2)
        seconds = time.perf_counter() - t0
        if page.model.rowCount() != 0:
            raise SystemExit("bench: senders left")
        window.stream.stop()
        window.close()
        client.close()
        app.processEvents()
        print(f"code: {Path(sendergate.__file__).parent}", file=sys.stderr)
    finally:
        g.close()
        ini.unlink(missing_ok=True)
    return len(keys), seconds, keys


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    results = [one_run() for _ in range(args.runs)]
    for n, s, keys in results:
        print(f"run: {n} keystrokes, {s:.2f} s: {' '.join(keys)}", file=sys.stderr)
    print(f"ten pending senders cleared (mixed allow/deny): {statistics.median(r[0] for r in results):.0f} keystrokes, "
          f"{statistics.median(r[1] for r in results):.2f} s (median of {args.runs} runs; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
