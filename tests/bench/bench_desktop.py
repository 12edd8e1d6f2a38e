"""Desktop app against a gateway holding 1 million events.

    .venv/bin/python tests/bench/bench_desktop.py [--events 1000000] [--depth 100000]

Targets (issue 6 of the desktop app):
- app start to main window < 2 s (a real `sendergate-desktop` process, measured from spawning it to its
  "main window shown" log line: interpreter, imports, Qt, window);
- Activity: first rows < 1 s after opening the page;
- scrolling to `depth` rows deep keeps the GUI thread's longest stall < 50 ms (a 5 ms QTimer heartbeat:
  stall = the longest gap between two ticks). This machine's CPU is shared and drifts, so one run's
  maximum is noise-prone: the scroll is repeated `--runs` times and the median of the runs' maxima is
  what must stay under 50 ms; the worst run is printed next to it, with whether a GC pause fell inside;
- memory stays bounded: RSS reported at each depth.
Exits 1 when a target is missed. Offscreen Qt unless DISPLAY is set and QT_QPA_PLATFORM is not.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from sqlalchemy import insert  # noqa: E402

from sendergate.policy.decide import EventRecord, Verdict  # noqa: E402
from sendergate.store import schema  # noqa: E402
from sendergate.store.events import count_key, event_row  # noqa: E402  (bulk seeding: the store's own row shape)
from tests.support.gateway import GatewayProcess  # noqa: E402


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def seed_million(g: GatewayProcess, n: int) -> tuple[int, str]:
    """n events for alice over 90 days, ids in time order, inserted in big batches (minutes otherwise)."""
    user, token = g.store.add_user("alice@example.org")
    rnd = random.Random(1)
    verdicts = [Verdict.DELIVERED] * 6 + [Verdict.CHALLENGED, Verdict.SPAM, Verdict.SCREENED, Verdict.BULK,
                                          Verdict.BLOCKED, Verdict.VIRUS]
    now = datetime.now(timezone.utc)
    step = timedelta(days=90) / n
    batch = 50_000
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            v = rnd.choice(verdicts)
            rows.append(event_row(EventRecord(
                ts=now - step * (n - i), verdict=v, reason=f"{v.value} (bench)", client_ip="192.0.2.1",
                helo="mail.example.net", sender=f"sender{i % 5000}@domain{i % 700}.example",
                recipient="alice@example.org", user_id=user.id, subject=f"Message number {i}",
                from_header=f"sender{i % 5000}@domain{i % 700}.example", message_id=f"<{i}@bench>",
                size=4000 + i % 9000)))
        with g.store.engine.begin() as conn:
            conn.execute(insert(schema.events), rows)
            g.store.add_event_counts_tx(conn, Counter(count_key(r) for r in rows))
        print(f"\rseeding: {min(n, start + batch):,} events ({time.perf_counter() - t0:.0f} s)", end="",
              file=sys.stderr)
    print(file=sys.stderr)
    return user.id, token


def measure_start(url: str, token: str, rounds: int) -> list[float]:
    """Spawn the real gui script; time until it logs that its main window is shown."""
    times = []
    for _ in range(rounds):
        env = {**os.environ, "SENDERGATE_TOKEN": token, "SENDERGATE_LOG": "INFO"}
        settings = Path(f"/tmp/sendergate-bench-settings-{os.getpid()}.ini")
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "sendergate.desktop.app", "--gateway", url,
                                 "--settings-file", str(settings)], env=env, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        shown = None
        for line in proc.stderr:
            if "main window shown" in line:
                shown = time.perf_counter() - t0
                break
        proc.terminate()
        proc.wait(10)
        settings.unlink(missing_ok=True)
        if shown is None:
            raise SystemExit("bench: the app never showed its window")
        times.append(shown)
    return times


@dataclass(frozen=True)
class Run:
    """One scroll from the top to the depth: the heartbeat gaps and the GC pauses seen meanwhile."""

    longest: float
    p99: float
    heartbeats: int
    over_two_frames: int
    longest_gc: float
    gc_in_longest: bool
    scroll_time: float
    top_ok: bool
    pages: int

    @classmethod
    def of(cls, ticks: list[float], gc_pauses: list[tuple[float, float]], scroll_time: float, top_ok: bool,
           pages: int) -> Run:
        gaps = [(b - a, a, b) for a, b in itertools.pairwise(ticks)]
        if not gaps:
            raise SystemExit("bench: no heartbeats during a run")
        longest, start, end = max(gaps)
        p99 = sorted(g for g, _, _ in gaps)[int(len(gaps) * 0.99)]
        return cls(longest, p99, len(ticks), sum(1 for g, _, _ in gaps if g > 0.033),
                   max((b - a for a, b in gc_pauses), default=0.0),
                   any(a < end and b > start for a, b in gc_pauses), scroll_time, top_ok, pages)

    def describe(self) -> str:
        return (f"longest stall {self.longest * 1000:.1f} ms, p99 {self.p99 * 1000:.1f} ms, "
                f"{self.heartbeats:,} heartbeats, {self.scroll_time:.1f} s")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--depth", type=int, default=100_000)
    ap.add_argument("--start-rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5, help="scrolls to the depth; stalls are reported per run")
    args = ap.parse_args()

    g = GatewayProcess()
    try:
        _, token = seed_million(g, args.events)
        g.start(timeout=60)
        starts = measure_start(g.http_url, token, args.start_rounds)

        from PySide6.QtCore import QEventLoop, Qt, QTimer
        from PySide6.QtWidgets import QApplication

        from sendergate.desktop.api_client import GatewayClient
        from sendergate.desktop.main_window import MainWindow
        from sendergate.desktop.settings import Settings

        _app = QApplication.instance() or QApplication([])  # held: Qt needs the application alive
        rss_before = rss_mb()
        client = GatewayClient(g.http_url, token)
        settings = Settings.at_path(f"/tmp/sendergate-bench-inproc-{os.getpid()}.ini")
        window = MainWindow(client, settings)
        window.resize(1200, 800)
        window.show()
        window.start()

        def pump(seconds: float) -> None:
            idle = QEventLoop()
            QTimer.singleShot(int(seconds * 1000), idle.quit)
            idle.exec()

        pump(1.0)  # overview and pending arrive; not part of the Activity figure

        # heartbeat: the GUI thread's longest stall; GC pauses recorded alongside to tell them apart
        ticks: list[float] = []
        heartbeat = QTimer()
        heartbeat.setTimerType(Qt.TimerType.PreciseTimer)
        heartbeat.setInterval(5)
        heartbeat.timeout.connect(lambda: ticks.append(time.perf_counter()))
        gc_pauses: list[tuple[float, float]] = []
        gc_started = [0.0]

        def gc_watch(phase: str, info: dict) -> None:
            if phase == "start":
                gc_started[0] = time.perf_counter()
            else:
                gc_pauses.append((gc_started[0], time.perf_counter()))

        gc.callbacks.append(gc_watch)
        heartbeat.start()

        t0 = time.perf_counter()
        page = window.show_page("activity")
        model = page.model
        shown = QEventLoop()
        model.first_page_loaded.connect(shown.quit)
        QTimer.singleShot(30_000, shown.quit)
        if model.rowCount() == 0:
            shown.exec()
        first_rows = time.perf_counter() - t0
        if model.rowCount() == 0:
            raise SystemExit("bench: no rows in the Activity page after 30 s")

        table = page.table
        bar = table.verticalScrollBar()
        marks: dict[int, float] = {}
        runs: list[Run] = []
        for run_no in range(args.runs):
            if run_no:  # the next run starts from the top of a fresh log, like reopening the page
                ready = QEventLoop()
                model.first_page_loaded.connect(ready.quit)
                model.reload()
                QTimer.singleShot(30_000, ready.quit)
                ready.exec()
                model.first_page_loaded.disconnect(ready.quit)
                pump(0.3)
            ticks.clear()
            gc_pauses.clear()
            next_mark = [10_000]
            loop = QEventLoop()

            def scroll_step() -> None:
                """Like a user holding End: every frame (16 ms) to the bottom, where the view fetches more."""
                if model.rowCount() >= next_mark[0]:
                    marks[next_mark[0]] = rss_mb()
                    next_mark[0] += 10_000
                if model.rowCount() >= args.depth:
                    loop.quit()
                    return
                bar.setValue(bar.maximum())

            scroller = QTimer()
            scroller.setInterval(16)
            scroller.timeout.connect(scroll_step)
            scroll_started = time.perf_counter()
            scroller.start()
            QTimer.singleShot(600_000, loop.quit)  # a safety net: 10 minutes
            loop.exec()
            scroller.stop()
            scroll_time = time.perf_counter() - scroll_started
            if model.rowCount() < args.depth:
                raise SystemExit("bench: scrolling did not reach the depth in 10 minutes")
            pump(0.5)
            # jump back to the top: dropped pages come back from their cursors
            bar.setValue(0)
            pump(1.5)
            top_ok = model.event_at(0) is not None
            runs.append(Run.of(ticks, gc_pauses, scroll_time, top_ok, model.loaded_pages()))
            print(f"run {run_no + 1}: {runs[-1].describe()}", file=sys.stderr)
        heartbeat.stop()
        gc.callbacks.remove(gc_watch)
        rss_end = rss_mb()
        window.stream.stop()
        window.close()
        client.close()
        Path(f"/tmp/sendergate-bench-inproc-{os.getpid()}.ini").unlink(missing_ok=True)
    finally:
        g.close()

    maxima = sorted(r.longest for r in runs)
    median_max = statistics.median(maxima)
    worst = runs[max(range(len(runs)), key=lambda i: runs[i].longest)]
    print(f"events in the gateway:        {args.events:,}")
    print(f"start to main window:         {', '.join(f'{t:.2f}' for t in starts)} s (target < 2 s)")
    print(f"Activity first rows:          {first_rows * 1000:.0f} ms (target < 1000 ms)")
    print(f"scrolling to {args.depth:,} rows, {len(runs)} runs: "
          + "; ".join(f"{r.scroll_time:.1f} s" for r in runs) + f"; pages in memory: {runs[-1].pages}")
    print(f"GUI thread longest stall per run: {', '.join(f'{m * 1000:.1f}' for m in (r.longest for r in runs))} ms")
    print(f"  median of the runs' maxima: {median_max * 1000:.1f} ms (target < 50 ms); "
          f"worst {worst.longest * 1000:.1f} ms"
          f" ({'a GC pause inside it' if worst.gc_in_longest else 'no GC pause inside it'})")
    print(f"  p99 gap (median over runs): {statistics.median(r.p99 for r in runs) * 1000:.1f} ms; "
          f"gaps > 33 ms (two frames): {sum(r.over_two_frames for r in runs)} in "
          f"{sum(r.heartbeats for r in runs):,} heartbeats; "
          f"longest GC pause {max(r.longest_gc for r in runs) * 1000:.1f} ms")
    rows_rss = "; ".join(f"{k // 1000}k rows {v:.0f} MB" for k, v in marks.items())
    print(f"RSS: before window {rss_before:.0f} MB; {rows_rss}; end {rss_end:.0f} MB")
    top_ok = all(r.top_ok for r in runs)
    print(f"top rows back after jumping up: {top_ok}")
    ok = max(starts) < 2.0 and first_rows < 1.0 and median_max < 0.050 and top_ok
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
