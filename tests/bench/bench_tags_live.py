"""The Sign-up addresses page while mail by its addresses arrives live: what a refresh costs, and the GUI
thread's longest stall.

    .venv/bin/python tests/bench/bench_tags_live.py [--tags 1000] [--runs 3]

A real gateway process with one user and `--tags` sign-up addresses (each with a few senders); the main
window (1,024 x 720, Sign-up addresses shown, live stream on) in this process. Printed first: what one read
of the whole list (GET /tags, what F5 and a throttled reload do) and of one row (GET /tags/{id}, what the
page does per tag an event names) take, medians of 15, from this process. Then another process writes
events with a tag to the store, as SMTP would, and the page follows them through the stream:
  few:  300 events by 3 of the tags in a burst (the page refreshes those 3 rows);
  many: one event by each of the tags (more rows than the page's LIVE_ROWS_MAX: one reload of the list).
Per phase: the time until the page shows them, the reads the page made, and the GUI thread's longest stall
(a 5 ms heartbeat, as tests/bench/bench_pending_stall.py; the CPU time within that gap says what was ours).
The median of the runs' stalls must stay under 50 ms (issue 17's bound); exits 1 when it does not.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.bench.bench_pending_stall import Probe  # noqa: E402
from tests.support.gateway import GatewayProcess  # noqa: E402

TARGET_MS = 50.0
WRITER = """
import sys
from datetime import datetime, timezone
from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import Store
store = Store(sys.argv[1])
uid, names, per, prefix = int(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]), sys.argv[5]
now = datetime.now(timezone.utc)
for i in range(per):
    store.add_events([EventRecord(ts=now, verdict=Verdict.DELIVERED, reason="sign-up address", user_id=uid,
                                  sender=f"{prefix}{i % 7}@site-{n}.example", recipient=f"alice+{n}@example.org",
                                  subject=f"{prefix} {i}", tag=n) for n in names])
"""


def write(g: GatewayProcess, uid: int, names: list[str], per: int, prefix: str) -> subprocess.Popen[bytes]:
    """Events by `names`, `per` each, from another process (a thread here would hold our GIL)."""
    return subprocess.Popen([sys.executable, "-c", WRITER, g.store_url, str(uid), ",".join(names), str(per), prefix])


def median_ms(fn: Any, n: int = 15) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def one_run(n_tags: int) -> dict[str, Any]:
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from sendergate.desktop.api_client import GatewayClient
    from sendergate.desktop.main_window import MainWindow
    from sendergate.desktop.pages.tags import TagsPage
    from sendergate.desktop.settings import Settings
    from sendergate.desktop.stream import StreamFollower
    from sendergate.policy.decide import EventRecord, Verdict

    app = QApplication.instance() or QApplication([])
    g = GatewayProcess()
    out: dict[str, Any] = {}
    ini = Path(f"/tmp/sendergate-bench-tags-{os.getpid()}.ini")
    try:
        user, token = g.store.add_user("alice@example.org")
        names = [f"site{i:04d}" for i in range(n_tags)]
        for name in names:
            g.store.add_tag(user.id, "alice@example.org", name)
        now = time.time()
        from datetime import datetime, timezone
        ts = datetime.fromtimestamp(now, timezone.utc)
        g.store.add_events([EventRecord(ts=ts, verdict=Verdict.DELIVERED, reason="seed", user_id=user.id,
                                        sender=f"s{k}@site-{name}.example", subject="seed", tag=name)
                            for name in names for k in range(3)])
        g.start(timeout=60)
        client = GatewayClient(g.http_url, token, timeout=30)
        tags = client.tags()
        out["list_ms"] = median_ms(client.tags)
        out["row_ms"] = median_ms(lambda: client.tag(tags[len(tags) // 2].id))

        stream = StreamFollower(client, first_delay=0.2, max_delay=1.0, heartbeat=1)
        window = MainWindow(client, Settings.at_path(str(ini)), stream=stream)
        window.resize(1024, 720)
        window.show()
        window.start()
        page = window.show_page("tags")
        assert isinstance(page, TagsPage)
        reads = {"list": 0, "row": 0}
        list_tags, one_tag = client.tags, client.tag

        def counted_list(*a: Any, **k: Any) -> Any:
            reads["list"] += 1
            return list_tags(*a, **k)

        def counted_row(tag_id: int) -> Any:
            reads["row"] += 1
            return one_tag(tag_id)

        client.tags, client.tag = counted_list, counted_row  # type: ignore[method-assign]

        def wait_for(cond: Any, timeout: float = 120.0) -> None:
            t0 = time.perf_counter()
            while not cond():
                if time.perf_counter() - t0 > timeout:
                    raise SystemExit("bench: timed out")
                loop = QEventLoop()
                QTimer.singleShot(20, loop.quit)
                loop.exec()

        wait_for(lambda: page.loaded and window.connection_state == "online" and page.model.rowCount() == n_tags)

        def received() -> dict[str, int]:
            return {t.name: t.received for t in page.model.records()}

        probe = Probe()
        for phase, chosen, per in (("few", names[:3], 100), ("many", names, 1)):
            reads.update(list=0, row=0)
            now_received = received()
            target = {name: now_received[name] + per for name in chosen}
            probe.start()
            t0 = time.perf_counter()
            writer = write(g, user.id, chosen, per, phase)

            def shown_all() -> bool:
                got = received()
                return writer.poll() is not None and all(got[name] >= want for name, want in target.items())
            wait_for(shown_all)
            shown = time.perf_counter() - t0
            gap, busy, in_gc = probe.stop()
            out[phase] = (gap, busy, in_gc, shown, reads["list"], reads["row"])
        from sendergate.desktop import operations
        wait_for(lambda: operations.running() == 0)
        window.stream.stop()
        window.close()
        client.close()
        app.processEvents()
    finally:
        g.close()
        ini.unlink(missing_ok=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tags", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    runs = [one_run(args.tags) for _ in range(args.runs)]
    print(f"{args.tags} sign-up addresses, {args.runs} runs")
    print(f"  GET /tags (the whole list):  median of runs {statistics.median(r['list_ms'] for r in runs):7.1f} ms")
    print(f"  GET /tags/{{id}} (one row):   median of runs {statistics.median(r['row_ms'] for r in runs):7.1f} ms")
    worst = 0.0
    for phase in ("few", "many"):
        gaps = [r[phase][0] for r in runs]
        print(f"  {phase:5s}: stall " + ", ".join(f"{r[phase][0]:.0f} ms (ours {r[phase][1]:.0f}"
                                                   f"{', GC' if r[phase][2] else ''})" for r in runs)
              + "; shown after " + ", ".join(f"{r[phase][3]:.2f} s" for r in runs)
              + "; reads list/row " + ", ".join(f"{r[phase][4]}/{r[phase][5]}" for r in runs))
        worst = max(worst, statistics.median(gaps))
    ok = worst < TARGET_MS
    print(f"  median stall {worst:.0f} ms: {'OK' if ok else 'OVER'} (target < {TARGET_MS:.0f} ms)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
