"""`sendergate milter` in two worker processes (`milter.workers = 2`) behind a real Postfix (smtpd_milters,
unix socket), delivering to smtp-sink: decisions, both workers at work, a worker killed, SIGTERM, the socket.

The suite runs on two or more cores (CI: two); two workers also run on one, so nothing here needs two.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.milter import MilterProcess
from tests.support.milter_client import MilterClient
from tests.support.postfix import PostfixInstance, SmtpSink

TOKEN = re.compile(rb"https://mx\.example\.org/c/([A-Za-z0-9_-]{22})\b")
KNOWN, STRANGER = "bob@friend.example", "stranger@elsewhere.test"
WORKER = re.compile(r"milter queue_id=\S+ sender=(\S+) reply=.* worker=(\d+)$", re.M)
READY = re.compile(r"milter worker (\d+) ready \(pid (\d+)\)")


def message(sender: str, subject: str) -> bytes:
    return (f"From: <{sender}>\r\nTo: <alice@example.org>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '-')}@test>\r\n\r\nHello.\r\n").encode()


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(dump=True) as s:
        yield s


@pytest.fixture(scope="module")
def milter() -> Iterator[MilterProcess]:
    m = MilterProcess(listen="unix", workers=2, extra={"http": {"metrics_public": True}})
    alice, _ = m.store.add_user("alice@example.org")
    m.store.add_entry(alice.id, "allow", KNOWN)
    m.start()
    yield m
    m.close()


@pytest.fixture(scope="module")
def mx(milter: MilterProcess, sink: SmtpSink) -> Iterator[PostfixInstance]:
    with PostfixInstance(routes={"example.org": sink.port}, hostname="mx.example.org",
                         main_cf={"mynetworks": "", "milter_protocol": "6", "milter_default_action": "tempfail",
                                  "in_flow_delay": "0", "smtpd_milters": milter.postfix_spec}) as pf:
        yield pf


def send(port: int, sender: str, subject: str) -> tuple[int, bytes]:
    """One message through Postfix: the reply to its DATA (or to the first command refused)."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test", timeout=60) as client:
        code, text = client.mail(sender)
        if code != 250:
            return code, text
        code, text = client.rcpt("alice@example.org")
        if code != 250:
            return code, text
        return client.data(message(sender, subject))


def batch(port: int, tag: str, n: int = 8) -> dict[str, tuple[int, bytes]]:
    """n messages at once (half from the known sender, half from a stranger): subject -> reply."""
    jobs = {f"{tag} {i}": (KNOWN if i % 2 else STRANGER) for i in range(n)}
    with ThreadPoolExecutor(n) as pool:
        futures = {subject: pool.submit(send, port, sender, subject) for subject, sender in jobs.items()}
        return {subject: f.result() for subject, f in futures.items()}


def assert_decided(replies: dict[str, tuple[int, bytes]], sink: SmtpSink, m: MilterProcess) -> None:
    """Known sender: 250 and in the sink; stranger: 550 with a link, not in the sink; an event each."""
    known = [s for s in replies if int(s.rsplit(" ", 1)[1]) % 2]
    for subject, (code, text) in replies.items():
        if subject in known:
            assert code == 250, (subject, code, text, m.read_log()[-2000:])
        else:
            assert code == 550 and TOKEN.search(text), (subject, code, text, m.read_log()[-2000:])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        delivered = [d.message_crlf for d in sink.messages()]
        if all(any(f"Subject: {s}\r\n".encode() in d for d in delivered) for s in known):
            break
        time.sleep(0.1)
    for subject in replies:
        found = any(f"Subject: {subject}\r\n".encode() in d for d in delivered)
        assert found == (subject in known), subject
    verdicts = {e.subject: e.verdict for e in m.events() if e.subject in replies}
    assert verdicts == {s: ("delivered" if s in known else "challenged") for s in replies}, verdicts


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped (nor gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def workers_of(m: MilterProcess, n: int = 2, timeout: float = 15.0) -> dict[int, int]:
    """Worker index -> pid of the supervisor's live children, from /proc and the workers' ready lines."""
    assert m.proc is not None
    deadline = time.monotonic() + timeout
    while True:
        kids = {int(p) for p in Path(f"/proc/{m.proc.pid}/task/{m.proc.pid}/children").read_text().split()}
        kids = {p for p in kids if _alive(p)}  # a killed worker stays a child until the supervisor reaps it
        ready = {int(pid): int(index) for index, pid in READY.findall(m.read_log())}
        if len(kids) == n and kids <= set(ready):
            return {ready[pid]: pid for pid in kids}
        if time.monotonic() > deadline:
            raise AssertionError(f"children {kids}, ready {ready}\n{m.read_log()[-2000:]}")
        time.sleep(0.05)


def deciders(m: MilterProcess) -> set[int]:
    """The workers that decided a message (the index each end-of-message log line names)."""
    return {int(w) for _, w in WORKER.findall(m.read_log())}


def test_two_workers_decide_mail_through_postfix_and_both_take_conversations(
        mx: PostfixInstance, milter: MilterProcess, sink: SmtpSink) -> None:
    workers = workers_of(milter)
    assert sorted(workers) == [0, 1]
    # the socket is the parent's, with the mode asked for (milter.socket_mode, 0660)
    assert isinstance(milter.address, str)
    assert stat.S_IMODE(os.stat(milter.address).st_mode) == 0o660
    for round_ in range(10):  # which worker accepts is the kernel's choice: rounds until both did
        replies = batch(mx.port, f"Both {round_}")
        assert_decided(replies, sink, milter)
        if deciders(milter) == {0, 1}:
            break
    assert deciders(milter) == {0, 1}, milter.read_log()[-3000:]
    # The link works: HTTP is served by worker 0, the token was committed by whichever worker decided.
    stranger = next(text for code, text in replies.values() if code == 550)
    token = TOKEN.search(stranger).group(1).decode()  # type: ignore[union-attr]
    page = httpx.get(f"{milter.http_url}/c/{token}", timeout=10)
    assert page.status_code == 200 and "alice@example.org" in page.text
    # /metrics (worker 0) adds up what both workers decided: they share one metrics directory
    decided = {v: sum(1 for e in milter.events() if e.verdict == v) for v in ("delivered", "challenged")}
    deadline = time.monotonic() + 10
    while True:
        text = httpx.get(f"{milter.http_url}/metrics", timeout=10).text
        counted = {v: _value(text, f'sendergate_smtp_verdicts_total{{verdict="{v}"}}') for v in decided}
        if counted == decided or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert counted == decided, (counted, decided)


def _value(text: str, name: str) -> int:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[-1]))
    return 0


def test_a_worker_killed_is_restarted_and_mail_keeps_flowing(
        mx: PostfixInstance, milter: MilterProcess, sink: SmtpSink) -> None:
    before = workers_of(milter)
    os.kill(before[0], signal.SIGKILL)  # worker 0: it also serves HTTP
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = workers_of(milter)
        if after[0] != before[0]:
            break
        time.sleep(0.1)
    assert after[0] != before[0] and after[1] == before[1], (before, after)
    assert re.search(rf"milter worker 0 \(pid {before[0]}\) exited with -9; restarting", milter.read_log())
    replies = batch(mx.port, "After kill")
    assert_decided(replies, sink, milter)
    stranger = next(text for code, text in replies.values() if code == 550)
    token = TOKEN.search(stranger).group(1).decode()  # type: ignore[union-attr]
    assert httpx.get(f"{milter.http_url}/c/{token}", timeout=10).status_code == 200  # HTTP is back


def test_a_worker_stopped_alone_leaves_the_socket_to_the_others(
        mx: PostfixInstance, milter: MilterProcess, sink: SmtpSink) -> None:
    """A worker that ends by itself (SIGTERM to its pid, not to the milter) is restarted; the socket
    file, the parent's, stays: Postfix must not find it gone while the milter runs."""
    before = workers_of(milter)
    os.kill(before[1], signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = workers_of(milter)
        if after[1] != before[1]:
            break
        time.sleep(0.1)
    assert after[1] != before[1], (before, after)
    assert isinstance(milter.address, str) and os.path.exists(milter.address)
    assert_decided(batch(mx.port, "After term"), sink, milter)


def test_a_socket_in_use_is_one_clear_error_and_the_running_milter_keeps_it(milter: MilterProcess) -> None:
    second = subprocess.run([sys.executable, "-m", "sendergate", "milter", "--config", str(milter.config_path)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2, second
    assert second.stderr.strip().splitlines()[-1] == (
        f"sendergate: milter.listen {milter.listen}: cannot listen: in use by a running milter"), second.stderr
    assert "Traceback" not in second.stderr and "ready" not in second.stderr  # no worker was started
    with MilterClient(milter.address) as c:  # the running milter's socket is still there and answers
        c.negotiate()


def test_sigterm_finishes_open_conversations_refuses_new_ones_and_removes_the_socket(tmp_path: Path) -> None:
    m = MilterProcess(listen=f"unix:{tmp_path}/stop.sock", workers=2)
    alice, _ = m.store.add_user("alice@example.org")
    m.store.add_entry(alice.id, "allow", KNOWN)
    try:
        m.start()
        pids = list(workers_of(m).values())
        busy: list[MilterClient] = []
        for _ in range(4):  # several at once, so that (very likely) each worker has one in a transaction
            c = MilterClient(m.address)
            c.negotiate()
            c.connect("client.test", "192.0.2.7")
            c.helo("client.test")
            c.mail(f"<{KNOWN}>")
            assert c.rcpt("<alice@example.org>") == [("c", b"")]
            busy.append(c)
        assert m.proc is not None
        m.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as late:  # refused at once, not left waiting
            late.settimeout(5)
            with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
                late.connect(str(tmp_path / "stop.sock"))
        body = (f"From: <{KNOWN}>\r\nTo: <alice@example.org>\r\nSubject: Hi\r\n\r\nHello.\r\n").encode()
        finished = [c.message(body) for c in busy]  # every open transaction still gets its answer
        code = m.proc.wait(30)
        for c in busy:
            c.sock.close()
    finally:
        m.close()
    assert all(f[-1] == ("c", b"") for f in finished), finished
    assert code == 0
    assert not (tmp_path / "stop.sock").exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)  # no worker outlives the milter


def test_a_message_whose_worker_dies_mid_transaction_is_not_let_through(
        mx: PostfixInstance, milter: MilterProcess, sink: SmtpSink) -> None:
    """The workers holding open conversations die (SIGKILL) between RCPT and the end of DATA: Postfix
    finds its milter connection gone and applies milter_default_action = tempfail (the client is told
    to retry); the stranger's message is neither delivered nor refused for good."""
    before = workers_of(milter)
    with smtplib.SMTP("127.0.0.1", mx.port, local_hostname="client.test", timeout=60) as client:
        assert client.mail(STRANGER)[0] == 250
        assert client.rcpt("alice@example.org")[0] == 250
        for pid in before.values():  # whichever worker holds this session's milter connection
            os.kill(pid, signal.SIGKILL)
        code, text = client.data(message(STRANGER, "Mid transaction"))
    assert 400 <= code < 500, (code, text, mx.maillog_tail())
    after = workers_of(milter)
    assert not set(after.values()) & set(before.values())
    assert_decided(batch(mx.port, "After both"), sink, milter)  # the restarted workers decide again
    assert not any(b"Subject: Mid transaction" in d.message_crlf for d in sink.messages())


def test_each_worker_and_its_threads_stay_on_a_cpu_of_their_own(milter: MilterProcess) -> None:
    """smtp.cpu_affinity = auto (the default) applies to the milter's workers as to the gateway's."""
    from sendergate.gateway import usable_cpus
    from tests.test_cpu_affinity import allowed

    cpus = usable_cpus()
    assert len(cpus) >= 2, f"this test needs two CPUs and this process may use {cpus}"
    seen = []
    for pid in workers_of(milter).values():
        threads = allowed(pid)
        assert len(threads) > 1, "a worker without its threads tells nothing"
        mine = set().union(*threads.values())
        assert len(mine) == 1, threads
        seen.append(mine.pop())
    assert sorted(seen) == cpus[:2]
    assert milter.proc is not None and allowed(milter.proc.pid)[milter.proc.pid] == set(cpus)
    assert "milter workers kept one per CPU (smtp.cpu_affinity = auto)" in milter.read_log()


def test_workers_that_keep_dying_end_the_milter_with_its_socket(tmp_path: Path) -> None:
    """More than five exits in a minute: the supervisor gives up, stops the rest, exits 1 (systemd's
    Restart=on-failure starts it again) and leaves neither a worker nor its socket behind."""
    m = MilterProcess(listen=f"unix:{tmp_path}/dying.sock", workers=2)
    try:
        m.start()
        assert m.proc is not None
        killed: set[int] = set()
        deadline = time.monotonic() + 50
        while m.proc.poll() is None and time.monotonic() < deadline:
            for pid in {int(k) for k in _kids(m.proc.pid)} - killed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            time.sleep(0.05)
        code = m.proc.wait(30)
        log = m.read_log()
    finally:
        m.close()
    assert code == 1, log[-2000:]
    assert "milter workers keep crashing; giving up" in log
    assert not (tmp_path / "dying.sock").exists()
    assert not any(Path(f"/proc/{pid}").exists() for pid in killed)


def _kids(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def test_the_workers_key(tmp_path: Path) -> None:
    from sendergate.config import ConfigError, from_dict
    from sendergate.gateway import usable_cpus

    assert from_dict({"domains": {"local": ["example.org"]}}).milter.workers == 0  # one per usable CPU
    for bad, why in ((-1, "must be at least 0"), ("2", "expected a whole number"), (True, "expected a whole number")):
        with pytest.raises(ConfigError) as err:
            from_dict({"domains": {"local": ["example.org"]}, "milter": {"workers": bad}})
        assert ("milter.workers", why) in err.value.problems
    cpus = len(usable_cpus())
    with MilterProcess(listen=f"unix:{tmp_path}/all.sock", workers=0) as m:  # 0: as many as this process's CPUs
        assert m.proc is not None
        if cpus == 1:  # one process, no supervisor
            assert not _kids(m.proc.pid) and "milter worker 0 ready" in m.read_log()
        else:
            assert len(workers_of(m, n=cpus)) == cpus
