"""`smtp.cpu_affinity`: a real gateway's workers, each on a CPU of its own (or not), read from /proc.

Linux only, as the key; the suite runs on two or more cores (CI: two), which these tests need and say so.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from sendergate.config import ConfigError, load
from sendergate.gateway import cpu_plan, usable_cpus
from tests.support.gateway import GatewayProcess


def allowed(pid: int) -> dict[int, set[int]]:
    """Each thread of `pid` and the CPUs it may run on (Cpus_allowed_list)."""
    out: dict[int, set[int]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                cpus: set[int] = set()
                for part in line.split(":", 1)[1].strip().split(","):
                    lo, _, hi = part.partition("-")
                    cpus.update(range(int(lo), int(hi or lo) + 1))
                out[int(task.name)] = cpus
    return out


def workers_of(gw: GatewayProcess, n: int, timeout: float = 20.0) -> list[int]:
    assert gw.proc is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = [int(p) for p in Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()]
        if len(kids) == n:
            return kids
        time.sleep(0.05)
    raise AssertionError(f"the gateway has {len(kids)} workers, not {n}")


@pytest.fixture()
def two_cpus() -> list[int]:
    cpus = usable_cpus()
    assert len(cpus) >= 2, f"these tests need two CPUs and this process may use {cpus}"
    return cpus


def test_the_plan() -> None:
    assert cpu_plan("auto", 2, [0, 1]) == [0, 1]
    assert cpu_plan("auto", 2, [2, 5, 7]) == [2, 5]  # the process's own CPUs (a cpuset), in order
    assert cpu_plan("off", 2, [0, 1]) is None
    assert cpu_plan("auto", 3, [0, 1]) is None  # more workers than CPUs: the scheduler shares them out
    assert cpu_plan("auto", 1, [0, 1]) is None  # one worker: nothing to keep apart


def test_an_unknown_setting_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[smtp]\ncpu_affinity = "always"\n')
    with pytest.raises(ConfigError, match="cpu_affinity"):
        load(path)


def test_each_worker_and_every_thread_it_starts_stay_on_a_cpu_of_its_own(two_cpus: list[int]) -> None:
    with GatewayProcess(workers=2) as gw:
        kids = workers_of(gw, 2)
        deadline = time.monotonic() + 20
        while any(len(allowed(pid)) < 2 for pid in kids) and time.monotonic() < deadline:
            with gw.smtp() as s:  # sessions until each worker has taken one and started its threads
                s.mail("stranger@unknown.example")
                s.rcpt("alice@example.org")
        seen = []
        for pid in kids:
            threads = allowed(pid)
            assert len(threads) > 1, f"a worker without its threads tells nothing: {threads}"
            cpus = set().union(*threads.values())
            assert len(cpus) == 1 and all(c == cpus for c in threads.values()), threads
            seen.append(cpus.pop())
        assert sorted(seen) == two_cpus[:2], (seen, two_cpus)
        assert gw.proc is not None
        supervisor = allowed(gw.proc.pid)[gw.proc.pid]
        assert supervisor == set(two_cpus), supervisor  # the supervisor is left alone
        assert "SMTP workers kept one per CPU" in gw.read_log(), gw.read_log()[-2000:]

        # a worker that dies is restarted on the CPU its index had
        victim = kids[0]
        cpu = next(iter(allowed(victim)[victim]))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            new = [p for p in workers_of(gw, 2) if p not in kids]
            if new and gw.read_log().count("sendergate: worker") >= 3:
                break
            time.sleep(0.1)
        assert new, f"the killed worker was not restarted: {gw.read_log()[-2000:]}"
        assert set().union(*allowed(new[0]).values()) == {cpu}, (allowed(new[0]), cpu)


def test_off_leaves_the_workers_to_the_scheduler(two_cpus: list[int]) -> None:
    with GatewayProcess(workers=2, extra={"smtp": {"cpu_affinity": "off"}}) as gw:
        for pid in workers_of(gw, 2):
            assert all(c == set(two_cpus) for c in allowed(pid).values())
        assert "kept one per CPU" not in gw.read_log()


def test_a_cpu_that_went_away_leaves_the_worker_running_unpinned(caplog: pytest.LogCaptureFixture) -> None:
    """A cpuset changed between the plan and the fork (or a CPU taken offline): a warning, no crash."""
    import threading

    from sendergate.gateway import _pin

    before = os.sched_getaffinity(0)
    result: list[set[int]] = []

    def in_a_thread() -> None:  # sched_setaffinity(0) is per thread on Linux: leave the test's own alone
        _pin(7, 4095)
        result.append(os.sched_getaffinity(0))

    with caplog.at_level("WARNING", logger="sendergate"):
        t = threading.Thread(target=in_a_thread)
        t.start()
        t.join()
    assert result == [before]
    assert "worker 7 not kept on CPU 4095" in caplog.text


def test_workers_0_on_one_usable_cpu_of_several_is_one_process_and_its_metrics_are_its_own(
        two_cpus: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway given one CPU of this machine's (a cpuset, taskset) counts one worker: no supervisor, and
    the metrics directory is named after the gateway itself, not after whoever started it (which is
    what a count of every CPU of the host made it)."""
    import threading

    monkeypatch.setenv("SENDERGATE_METRICS_DIR", str(tmp_path))
    found: dict[str, object] = {}

    def start_on_one_cpu() -> None:  # the mask is per thread and a child inherits its parent thread's
        os.sched_setaffinity(0, {two_cpus[-1]})
        gw = GatewayProcess(workers=0)
        try:
            gw.start()
            assert gw.proc is not None
            found["pid"] = gw.proc.pid
            found["children"] = Path(f"/proc/{gw.proc.pid}/task/{gw.proc.pid}/children").read_text().split()
            found["dirs"] = sorted(p.name for p in tmp_path.iterdir())
        finally:
            gw.close()

    t = threading.Thread(target=start_on_one_cpu)
    t.start()
    t.join()
    assert found["children"] == [], "one usable CPU: the gateway runs as one process"
    assert found["dirs"] and all(d.startswith(f"sendergate-metrics-{found['pid']}-") for d in found["dirs"]), found
