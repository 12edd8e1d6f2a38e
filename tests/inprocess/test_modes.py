"""Mailbox modes and role mailboxes (SPEC §4.6), fast: the handler in this process with a real SQLite store
and the fakes of test_handler.py (what each fake stands for is proved against the real daemon elsewhere;
tests/test_gateway_modes.py drives the real gateway process).

The matrix: each mode against each thing the sender can be (stranger, automated, forged, virus, spam,
blocked, known), and the doors of SPEC §4.5 a sender could try to open through a mode or a role mailbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sendergate.policy.decide import AuthResults, ScanOutcome
from sendergate.store import Store

from . import test_handler
from .test_handler import Gateway, forged, message, passing, send, serving

pytestmark = pytest.mark.fast


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """test_handler's `make` (a fresh store with alice and carol, the fakes), used here by name."""
    yield from test_handler.make.__wrapped__(tmp_path)

STRANGER = "someone@stranger.example"


def with_mode(gw: Gateway, mode: str | None, address: str = "alice@example.org") -> None:
    store: Store = gw.rt.store
    if mode is not None:
        store.set_user_mode(store.user_by_address(address).id, mode)


def outcome_of(gw: Gateway, sender: str, recipients: list[str], content: bytes) -> tuple[list[str], list]:
    """One transaction; the gateway serves in this process for the test's lifetime (one store pool)."""
    return gw_run(gw, send, sender, recipients, content), gw.events


def gw_run(gw: Gateway, fn: Any, *args: Any) -> Any:
    runner = getattr(gw, "_runner", None)
    if runner is None:
        runner = asyncio.Runner()
        cm = serving(gw)
        port = runner.run(cm.__aenter__())
        gw._runner, gw._port, gw._cm = runner, port, cm  # type: ignore[attr-defined]
        _open.append(gw)
    return runner.run(fn(gw._port, *args))  # type: ignore[attr-defined]


_open: list[Gateway] = []


@pytest.fixture(autouse=True)
def _close_gateways() -> Any:
    yield
    while _open:
        gw = _open.pop()
        gw._runner.run(gw._cm.__aexit__(None, None, None))  # type: ignore[attr-defined]
        gw._runner.close()  # type: ignore[attr-defined]


# -- the matrix --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mode", "code", "verdict"), [
    ("enforce", "550", "challenged"), ("observe", "250", "observed"), ("off", "250", "delivered")])
def test_stranger_per_mode(make, mode: str, code: str, verdict: str) -> None:
    gw = make(auth=passing("stranger.example"))
    with_mode(gw, mode)
    replies, events = outcome_of(gw, STRANGER, ["alice@example.org"], message(STRANGER))
    assert replies[-1].startswith(code), replies
    assert [e.verdict.value for e in events] == [verdict]
    if mode != "enforce":
        assert len(gw.deliverer.handed) == 1 and gw.deliverer.handed[0][1] == ""  # the inbox, not Screened
        assert "would have been challenged" in events[0].reason and mode in events[0].reason
        assert events[0].details["mode"] == mode
    assert gw.scanners.calls and all(spam for spam, _ in gw.scanners.calls)  # spamd asked in every mode


@pytest.mark.parametrize("mode", ["enforce", "observe", "off"])
@pytest.mark.parametrize(("outcome", "verdict"), [(ScanOutcome(virus="Eicar-Signature"), "virus"),
                                                  (ScanOutcome(spam_score=20.0), "spam")])
def test_virus_and_spam_refused_in_every_mode(make, mode: str, outcome: ScanOutcome, verdict: str) -> None:
    gw = make(outcome=outcome, auth=passing("stranger.example"))
    with_mode(gw, mode)
    replies, events = outcome_of(gw, STRANGER, ["alice@example.org"], message(STRANGER))
    assert replies[-1].startswith("554"), (mode, replies)
    assert [e.verdict.value for e in events] == [verdict]
    assert gw.deliverer.handed == []


@pytest.mark.parametrize("mode", ["observe", "off"])
def test_scanner_failure_still_tempfails(make, mode: str) -> None:
    gw = make(outcome=ScanOutcome(spam_failed="timed out"), auth=passing("stranger.example"))
    with_mode(gw, mode)
    replies, events = outcome_of(gw, STRANGER, ["alice@example.org"], message(STRANGER))
    assert replies[-1].startswith("451"), replies
    assert gw.deliverer.handed == []


@pytest.mark.parametrize(("mode", "verdict"), [("observe", "observed"), ("off", "delivered")])
def test_forged_is_lifted_but_scanned(make, mode: str, verdict: str) -> None:
    gw = make(auth=forged("stranger.example"))
    with_mode(gw, mode)
    replies, events = outcome_of(gw, STRANGER, ["alice@example.org"], message(STRANGER))
    assert replies[-1].startswith("250"), replies
    assert events[-1].verdict.value == verdict and "would have been blocked" in events[-1].reason
    assert gw.scanners.calls and all(spam for spam, _ in gw.scanners.calls)


@pytest.mark.parametrize(("mode", "verdict"), [("observe", "observed"), ("off", "delivered")])
def test_unsigned_automated_is_lifted(make, mode: str, verdict: str) -> None:
    gw = make(auth=AuthResults(spf="pass", spf_domain="shop.example"))
    with_mode(gw, mode)
    replies, events = outcome_of(gw, "no-reply@shop.example", ["alice@example.org"], message("no-reply@shop.example"))
    assert replies[-1].startswith("250"), replies
    assert events[-1].verdict.value == verdict and "would have been bulk" in events[-1].reason


@pytest.mark.parametrize("mode", ["observe", "off"])
def test_the_users_block_still_holds(make, mode: str) -> None:
    gw = make()
    with_mode(gw, mode)
    replies, events = outcome_of(gw, "spam@bad.example", ["alice@example.org"], message("spam@bad.example"))
    assert replies[1].startswith("550"), replies
    assert [e.verdict.value for e in events] == ["blocked"]


def test_default_mode_from_config(make) -> None:
    gw = make(auth=passing("stranger.example"), challenge={"default_mode": "observe"})
    replies, events = outcome_of(gw, STRANGER, ["carol@example.org"], message(STRANGER, "carol@example.org"))
    assert replies[-1].startswith("250") and events[-1].verdict.value == "observed"
    gw.rt.store.set_user_mode(gw.rt.store.user_by_address("carol@example.org").id, "enforce")
    replies, events = outcome_of(gw, STRANGER, ["carol@example.org"], message(STRANGER, "carol@example.org"))
    assert replies[-1].startswith("550"), "the user's own mode beats the default"


def test_address_mode_overrides_the_users(make) -> None:
    gw = make(auth=passing("stranger.example"))
    store: Store = gw.rt.store
    store.add_alias("alice@example.org", "info@example.org")
    store.set_address_mode("info@example.org", "off")
    replies, events = outcome_of(gw, STRANGER, ["info@example.org"], message(STRANGER, "info@example.org"))
    assert replies[-1].startswith("250") and events[-1].verdict.value == "delivered"
    replies, events = outcome_of(gw, STRANGER, ["alice@example.org"], message(STRANGER))
    assert replies[-1].startswith("550"), "the alias's mode is the alias's only"


# -- what a sender must not be able to do ----------------------------------------------------------

def test_a_tag_or_case_does_not_choose_the_mode(make) -> None:
    """alice is in enforce; carol in off. alice+off@, ALICE@, carol's tag forms: the mailbox's own mode."""
    gw = make(auth=passing("stranger.example"))
    with_mode(gw, "off", "carol@example.org")
    for rcpt in ("alice+off@example.org", "ALICE@example.org", "alice+postmaster@example.org"):
        replies, events = outcome_of(gw, STRANGER, [rcpt], message(STRANGER, rcpt))
        assert replies[-1].startswith("550") and events[-1].verdict.value == "challenged", (rcpt, replies)
    replies, events = outcome_of(gw, STRANGER, ["Carol+x@example.org"], message(STRANGER, "carol@example.org"))
    assert replies[-1].startswith("250") and events[-1].verdict.value == "delivered"


def test_role_mailbox_nobody_has_goes_to_the_owner(make) -> None:
    gw = make(auth=passing("stranger.example"), challenge={"role_owner": "carol@example.org"})
    for rcpt in ("postmaster@example.org", "Abuse@example.org", "PostMaster@EXAMPLE.org"):
        gw.deliverer.handed.clear()
        replies, events = outcome_of(gw, STRANGER, [rcpt], message(STRANGER, rcpt))
        assert replies[-1].startswith("250"), (rcpt, replies)
        assert events[-1].verdict.value == "delivered" and "role mailbox" in events[-1].reason
        assert events[-1].user_id == gw.rt.store.user_by_address("carol@example.org").id
        assert gw.deliverer.handed[0][0].recipients == ["carol@example.org"]


def test_role_mailbox_without_an_owner_is_the_first_admin(make) -> None:
    gw = make(auth=passing("stranger.example"))
    admin, _ = gw.rt.store.add_user("boss@example.org", admin=True)
    replies, events = outcome_of(gw, STRANGER, ["postmaster"], message(STRANGER, "postmaster"))
    assert replies[1].startswith("250") and replies[-1].startswith("250"), replies  # bare <Postmaster> (RFC 5321)
    assert events[-1].user_id == admin.id and gw.deliverer.handed[0][0].recipients == ["boss@example.org"]


def test_role_mailbox_a_user_has_is_theirs_without_a_challenge(make) -> None:
    gw = make(auth=passing("stranger.example"), challenge={"role_owner": "carol@example.org"})
    gw.rt.store.add_alias("alice@example.org", "abuse@example.org")  # alice is in enforce
    replies, events = outcome_of(gw, STRANGER, ["abuse@example.org"], message(STRANGER, "abuse@example.org"))
    assert replies[-1].startswith("250") and events[-1].verdict.value == "delivered", replies
    assert events[-1].user_id == gw.rt.store.user_by_address("alice@example.org").id
    assert gw.deliverer.handed[0][0].recipients == ["abuse@example.org"]


def test_role_mailbox_is_scanned(make) -> None:
    gw = make(outcome=ScanOutcome(spam_score=30.0), auth=passing("stranger.example"),
              challenge={"role_owner": "carol@example.org"})
    replies, events = outcome_of(gw, STRANGER, ["postmaster@example.org"], message(STRANGER))
    assert replies[-1].startswith("554") and events[-1].verdict.value == "spam"
    assert gw.deliverer.handed == []


def test_role_looking_address_elsewhere_is_relaying(make) -> None:
    gw = make(challenge={"role_owner": "carol@example.org"})
    for rcpt in ("postmaster@other.example", "@example.org:postmaster@other.example",
                 "postmaster%other.example@example.org", '"postmaster@other.example"@example.org'):
        replies, _ = outcome_of(gw, STRANGER, [rcpt], message(STRANGER))
        assert replies[1].startswith("550 5.7.1"), (rcpt, replies)


@pytest.mark.parametrize("first", ["postmaster@example.org", "alice@example.org"])
def test_role_mailbox_is_no_way_around_the_gate_for_others(make, first: str) -> None:
    """A stranger to postmaster@ and alice@ in one transaction: postmaster delivered, alice still challenged
    (not screened on postmaster's account): the second recipient is sent to a transaction of its own."""
    gw = make(auth=passing("stranger.example"), challenge={"role_owner": "carol@example.org"})
    other = "alice@example.org" if first.startswith("postmaster") else "postmaster@example.org"
    replies, events = outcome_of(gw, STRANGER, [first, other], message(STRANGER))
    assert replies[1].startswith("250") and replies[2].startswith("452 4.5.3"), replies
    verdict = "delivered" if first.startswith("postmaster") else "challenged"
    assert [e.verdict.value for e in events] == [verdict]
    replies, events = outcome_of(gw, STRANGER, ["alice@example.org"], message(STRANGER))
    assert replies[-1].startswith("550") and events[-1].verdict.value == "challenged"
    assert all(folder == "" and out.recipients == ["carol@example.org"] for out, folder in gw.deliverer.handed)


def test_observe_mailbox_is_no_way_around_the_gate_for_others(make) -> None:
    gw = make(auth=passing("stranger.example"))
    with_mode(gw, "observe", "carol@example.org")
    replies, events = outcome_of(gw, STRANGER, ["carol@example.org", "alice@example.org"], message(STRANGER))
    assert replies[2].startswith("452"), replies
    assert [e.verdict.value for e in events] == ["observed"]


def test_known_sender_shares_a_transaction_with_any_mode(make) -> None:
    gw = make()
    with_mode(gw, "observe", "carol@example.org")
    replies, events = outcome_of(gw, "bob@friend.example", ["alice@example.org", "carol@example.org"],
                                 message("bob@friend.example"))
    assert all(r.startswith("250") for r in replies), replies
    assert sorted(e.verdict.value for e in events) == ["delivered", "observed"]


def test_bad_mode_is_refused(tmp_path: Path) -> None:
    from sendergate.store.errors import Invalid
    store = Store(f"sqlite:///{tmp_path}/m.db")
    store.migrate()
    user, _ = store.add_user("a@example.org")
    with pytest.raises(Invalid):
        store.set_user_mode(user.id, "enforce; drop table users")
    store.set_user_mode(user.id, "observe")
    assert store.get_user(user.id).mode == "observe"
    store.set_user_mode(user.id, "default")
    assert store.get_user(user.id).mode is None
    store.close()




def test_a_mode_lifted_acceptance_vouches_for_nobody() -> None:
    """Second line behind the RCPT split: if a mode-delivered and a challenged recipient ever meet in one
    transaction, the challenged one is not screened on the other's account; the refusal stands for both."""
    from sendergate.policy.decide import DataDecision, Verdict, apply_mode, settle_recipients
    challenged = DataDecision(Verdict.CHALLENGED, None, "unknown sender")
    observed = apply_mode(challenged, "observe")
    assert observed.verdict is Verdict.OBSERVED and not observed.vouches
    assert [d.verdict for d in settle_recipients([observed, challenged])] == [Verdict.CHALLENGED] * 2
    known = DataDecision(Verdict.DELIVERED, None, "allowlisted sender")
    assert [d.verdict for d in settle_recipients([known, observed])] == [Verdict.DELIVERED, Verdict.OBSERVED]
    for verdict in (Verdict.VIRUS, Verdict.SPAM, Verdict.TEMPFAIL):
        refused = DataDecision(verdict, None, "x")
        assert all(apply_mode(refused, m, "postmaster") is refused for m in ("observe", "off", "role"))
