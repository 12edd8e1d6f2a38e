"""`sendergate milter` spoken to directly, as an MTA would (tests/support/milter_client.py), and its
command line: what Postfix cannot easily be made to send (a packet that lies about its length, a
message over the size limit, an authenticated submission), and check-config's word on the socket.

A real milter process, its own store; no Postfix (tests/test_milter.py has it).
"""

from __future__ import annotations

import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.milter import MilterProcess
from tests.support.milter_client import MilterClient

KNOWN = b"From: <bob@friend.example>\r\nTo: <alice@example.org>\r\nSubject: Hi\r\n\r\nHello.\r\n"


@pytest.fixture(scope="module")
def milter() -> Iterator[MilterProcess]:
    m = MilterProcess(listen="unix", extra={
        "smtp": {"max_message_size": "20KB"},
        "challenge": {"blocked_reply": "{recipient} does not accept mail from this sender (100% sure)."},
    })
    alice, _ = m.store.add_user("alice@example.org")
    m.store.add_entry(alice.id, "allow", "bob@friend.example")
    m.store.add_entry(alice.id, "block", "pest@spam.test")
    m.start()
    yield m
    m.close()


def session(m: MilterProcess, sender: str = "<bob@friend.example>", **macros: str) -> MilterClient:
    c = MilterClient(m.address)
    c.negotiate()
    c.connect("client.test", "192.0.2.7")
    c.helo("client.test")
    c.mail_reply = c.mail(sender, **macros)  # type: ignore[attr-defined]
    return c


def test_percent_in_a_reply_reaches_the_client_as_written(milter: MilterProcess) -> None:
    """Postfix reads a milter reply's '%%' as '%' and drops a lone '%' (Sendmail's printf heritage)."""
    with session(milter, "<pest@spam.test>") as c:
        [(code, data)] = c.rcpt("<alice@example.org>")
    assert code == "y" and b"(100%% sure)" in data, data


def test_a_message_over_the_size_limit_is_refused_and_not_kept(milter: MilterProcess) -> None:
    big = KNOWN + b"x" * 70 + b"\r\n" * 1  # one line, then many
    big += (b"y" * 998 + b"\r\n") * 40  # ~40 KB, twice the limit
    with session(milter) as c:
        c.rcpt("<alice@example.org>")
        replies = c.message(big, chunk=4096)
    assert replies[-1][0] == "y" and replies[-1][1].startswith(b"552 5.3.4"), replies
    assert not [e for e in milter.events() if e.subject == "Hi" and e.verdict == "delivered"]


def test_an_authenticated_submission_is_accepted_unscreened(milter: MilterProcess) -> None:
    """SMTP AUTH ({auth_authen}): a user of this server sending, not a stranger arriving: the MTA's own
    rules decided it may send; the milter steps aside for the message (and records nothing)."""
    before = len(milter.events())
    with session(milter, "<alice@example.org>", auth_authen="alice") as c:
        assert c.mail_reply == [("a", b"")]  # type: ignore[attr-defined]
    with session(milter, "<alice@example.org>") as c:  # the same without AUTH: an outside sender
        [(code, data)] = c.rcpt("<someone@elsewhere.test>")
    assert code == "y" and data.startswith(b"550 5.7.1 Relaying denied"), data
    assert len(milter.events()) == before + 1  # only the unauthenticated relay attempt


def test_known_sender_gets_continue_and_no_trace_header_of_ours(milter: MilterProcess) -> None:
    with session(milter, i="4QXYZ123") as c:
        assert c.rcpt("<alice@example.org>") == [("c", b"")]
        replies = c.message(KNOWN)
    assert replies[-1] == ("c", b""), replies
    # allowlist_auth = "off" here: no checks ran, so no Authentication-Results; never a Received line
    # (Postfix writes its own).
    assert [code for code, _ in replies] == ["c"], replies
    assert "milter queue_id=4QXYZ123 sender=bob@friend.example reply=250 2.0.0" in milter.read_log()


def test_null_sender_gets_no_link_and_the_http_side_runs(milter: MilterProcess) -> None:
    """A bounce that references nothing alice sent (SPEC §4.2 item 5): refused without a link, as by
    the proxy. The same process serves the confirmation page's side (/healthz)."""
    with session(milter, "<>") as c:
        assert c.rcpt("<alice@example.org>") == [("c", b"")]
        replies = c.message(b"From: <mailer-daemon@elsewhere.test>\r\nSubject: hello\r\n\r\nBuy now.\r\n")
        c.mail("<bob@friend.example>")  # the next message on the same connection starts afresh
        assert c.rcpt("<alice@example.org>") == [("c", b"")]
        after = c.message(KNOWN)
    code, data = replies[-1]
    assert code == "y" and data.startswith(b"550 5.7.1") and b"/c/" not in data, replies
    assert after[-1] == ("c", b""), after
    import httpx
    assert httpx.get(f"{milter.http_url}/healthz", timeout=10).status_code == 200


def test_an_mta_without_leading_space_support_gets_the_same_message_and_headers() -> None:
    """SMFIP_HDR_LEADSPC not offered (older MTAs): the MTA drops the space after ':' and adds one to
    inserted fields; the message rebuilt for the sender checks and the fields added come out the same."""
    m = MilterProcess(listen="unix", extra={"challenge": {"allowlist_auth": "relaxed"}})
    alice, _ = m.store.add_user("alice@example.org")
    m.store.add_entry(alice.id, "allow", "bob@friend.example")
    try:
        m.start()
        results = {}
        for offered in (0x1FFFFF, 0x1FFFFF & ~0x100000):
            with MilterClient(m.address) as c:
                c.negotiate(protocol=offered)
                c.connect("client.test", "192.0.2.7")
                c.helo("client.test")
                c.mail("<bob@friend.example>")
                c.rcpt("<alice@example.org>")
                results[offered] = c.message(KNOWN)
    finally:
        m.close()
    with_space, without = results.values()
    [(code, inserted)] = [r for r in with_space if r[0] == "i"]
    [(code2, inserted2)] = [r for r in without if r[0] == "i"]
    assert inserted[4:].startswith(b"Authentication-Results\0 mx.example.org;"), inserted
    assert inserted2[4:].startswith(b"Authentication-Results\0mx.example.org;"), inserted2
    assert inserted[4:].replace(b"\0 ", b"\0") == inserted2[4:]


def test_garbage_closes_that_connection_only(milter: MilterProcess) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(milter.address)  # type: ignore[arg-type]
        s.sendall(struct.pack("!I", 0x7FFFFFFF) + b"O")  # a length no MTA sends: not read into memory
        assert s.recv(100) == b""  # closed
    with session(milter) as c:  # the milter goes on serving
        assert c.rcpt("<alice@example.org>") == [("c", b"")]
    assert "packet length" in milter.read_log()


def test_recipient_before_sender_is_a_temporary_failure(milter: MilterProcess) -> None:
    with MilterClient(milter.address) as c:
        c.negotiate()
        c.connect("client.test", "192.0.2.7")
        assert c.rcpt("<alice@example.org>") == [("t", b"")]


# -- the command line --------------------------------------------------------------------------------

def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendergate", *args], capture_output=True, text=True, timeout=60)


def test_check_config_reports_the_milter_socket(milter: MilterProcess, tmp_path: Path) -> None:
    listening = run_cli("check-config", "--config", str(milter.config_path))
    assert listening.returncode == 0, listening.stderr
    assert f"milter.listen: {milter.listen}: listening" in listening.stdout

    other = MilterProcess(listen=f"unix:{tmp_path}/new.sock")
    try:
        bindable = run_cli("check-config", "--config", str(other.config_path))
        other.sections["milter"]["listen"] = "unix:/nonexistent-dir/milter.sock"
        from tests.support.gateway import write_config
        write_config(other.config_path, other.sections)
        missing = run_cli("check-config", "--config", str(other.config_path))
        other.sections["milter"]["listen"] = f"inet:127.0.0.1:{other.http_port}"  # not a milter there
        write_config(other.config_path, other.sections)
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", other.http_port))
            squatter.listen(1)
            not_milter = run_cli("check-config", "--config", str(other.config_path))
    finally:
        other.close()
    assert bindable.returncode == 0 and "new.sock: bindable" in bindable.stdout, bindable
    assert missing.returncode == 3 and "milter.listen: directory /nonexistent-dir does not exist" in missing.stderr
    assert not_milter.returncode == 3 and "not a milter" in not_milter.stderr, not_milter


def test_sigterm_lets_the_message_being_decided_finish_and_removes_its_socket(tmp_path: Path) -> None:
    m = MilterProcess(listen=f"unix:{tmp_path}/stop.sock")
    alice, _ = m.store.add_user("alice@example.org")
    m.store.add_entry(alice.id, "allow", "bob@friend.example")
    try:
        m.start()
        idle = MilterClient(m.address)  # connected, between messages
        idle.negotiate()
        busy = session(m)  # in a transaction
        assert busy.rcpt("<alice@example.org>") == [("c", b"")]
        assert m.proc is not None
        m.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionError):  # the idle connection is closed at once
            idle.read()
        finished = busy.message(KNOWN)  # the open transaction still gets its answer
        code = m.proc.wait(30)
        busy.sock.close()
        idle.sock.close()
    finally:
        m.close()
    assert finished[-1] == ("c", b"")
    assert code == 0
    assert not (tmp_path / "stop.sock").exists()


def test_milter_refuses_to_start_on_a_socket_in_use_and_bad_listen(milter: MilterProcess) -> None:
    second = run_cli("milter", "--config", str(milter.config_path))
    assert second.returncode == 2 and "in use by a running milter" in second.stderr, second
    assert "Traceback" not in second.stderr
    bad = run_cli("milter", "--config", str(milter.config_path), "--listen", "tcp:1.2.3.4:5")
    assert bad.returncode == 2 and "neither unix:/path nor inet:host:port" in bad.stderr, bad


def test_every_package_is_in_the_distribution() -> None:
    """pyproject.toml lists the packages by name: a new one (milter/) missing there would be absent
    from the wheel install.sh installs, and `sendergate milter` would fail only in production."""
    import tomllib

    repo = Path(__file__).resolve().parent.parent
    listed = set(tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    app = repo / "app"
    found = {".".join(init.parent.relative_to(app).parts) for init in (app / "sendergate").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
