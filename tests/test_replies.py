"""Reply texts (SPEC §4.2): templates with line breaks, the link on the first line, one refusal naming
several recipients, and the end-of-DATA outcome settled for all recipients of one transaction."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendergate.config import DEFAULT_REPLY, ConfigError, from_dict
from sendergate.policy import replies
from sendergate.policy.decide import DataDecision, Reply, Verdict, settle_recipients

pytestmark = pytest.mark.fast  # in process: no daemon, no subprocess

URL = "https://mx.example.org/c/" + "A" * 22


def reply_lines(text: str) -> list[str]:
    out = replies.render(550, "5.7.1", text).split("\r\n")
    assert all(len(ln.encode()) + 2 <= 512 for ln in out)
    assert all(ln.startswith("550-5.7.1 ") for ln in out[:-1]) and out[-1].startswith("550 5.7.1 ")
    return out


def test_a_newline_in_a_template_is_a_line_break_of_the_reply() -> None:
    template = "{recipient} accepts mail only from known senders: {url}\nOnce confirmed, send again.\nThanks."
    lines = reply_lines(replies.challenge_text(template, "alice@example.org", "x@y.test", URL))
    assert lines == ["550-5.7.1 alice@example.org accepts mail only from known senders: " + URL,
                     "550-5.7.1 Once confirmed, send again.", "550 5.7.1 Thanks."]
    assert "?" not in "".join(lines)


def test_virus_and_blocked_templates_keep_their_line_breaks_too() -> None:
    text = replies.fill("Refused: {virus}\r\nAsk your admin.", virus="Eicar\nInjected: 250 ok")
    assert reply_lines(text) == ["550-5.7.1 Refused: Eicar?Injected: 250 ok", "550 5.7.1 Ask your admin."]


def test_the_link_stays_on_the_first_line_of_a_long_template() -> None:
    template = "{recipient} " + "accepts mail only from known senders, " * 5 + "see {url}\n" + "More words. " * 80
    lines = reply_lines(replies.challenge_text(template, "alice@example.org", "x@y.test", URL))
    assert URL in lines[0] and len(lines) > 2
    assert all(URL not in ln for ln in lines[1:])


def test_one_refusal_names_every_recipient_with_one_link() -> None:
    names = ["alice@example.org", "bob@example.org", "carol@example.org"]
    first = reply_lines(replies.challenge_text(DEFAULT_REPLY, names, "s@x.test", URL))[0]
    assert first.startswith("550 5.7.1 alice@example.org, bob@example.org and carol@example.org accept")
    assert first.count("/c/") == 1 and URL in first


@settings(max_examples=200, deadline=None)
@given(st.lists(st.emails(), min_size=1, max_size=100), st.text(max_size=400))
def test_the_first_line_holds_the_whole_link_whatever_the_recipients_and_sender(names: list[str], sender: str) -> None:
    cfg = from_dict({"domains": {"local": ["example.org"]}})
    lines = reply_lines(replies.challenge_text(cfg.challenge.reply_for(len(names)), names, sender, URL))
    assert URL in lines[0].split()
    assert sum(ln.count("/c/") for ln in lines) == 1


@pytest.mark.parametrize("template, problem", [
    ("{recipient} accepts mail from known senders.\nConfirm at {url}", "first line"),
    ("Confirm " + "at the page " * 40 + "{url}", "too long"),
    ("{recipient} " + "x" * 460 + " {url}", "too long"),
])
def test_check_config_refuses_a_template_that_cannot_keep_the_link_first(template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_dict({"domains": {"local": ["example.org"]}, "challenge": {"reply": template}})
    assert "challenge.reply" in str(err.value) and problem in str(err.value)


def _d(verdict: Verdict, reason: str = "r") -> DataDecision:
    reply = None if verdict in (Verdict.DELIVERED, Verdict.SCREENED, Verdict.CHALLENGED) else Reply(554, "5.7.1", "x")
    return DataDecision(verdict, reply, reason)


def test_recipients_that_agree_keep_their_outcomes() -> None:
    same = [_d(Verdict.CHALLENGED), _d(Verdict.CHALLENGED)]
    assert settle_recipients(same) == same
    mixed_accepting = [_d(Verdict.DELIVERED), _d(Verdict.SCREENED)]
    assert settle_recipients(mixed_accepting) == mixed_accepting


def test_a_recipient_who_would_be_challenged_gets_the_message_screened_when_another_accepts_it() -> None:
    out = settle_recipients([_d(Verdict.DELIVERED, "reply to a message alice sent"), _d(Verdict.CHALLENGED),
                             _d(Verdict.BULK)])
    assert [d.verdict for d in out] == [Verdict.DELIVERED, Verdict.SCREENED, Verdict.SCREENED]
    assert "reply to a message alice sent" in out[1].reason
    assert Verdict.DELIVERED not in [d.verdict for d in out[1:]]  # never the inbox


def test_a_message_wide_refusal_stands_for_everyone() -> None:
    out = settle_recipients([_d(Verdict.DELIVERED), _d(Verdict.SPAM), _d(Verdict.CHALLENGED)])
    assert [d.verdict for d in out] == [Verdict.SPAM] * 3


def test_a_long_one_line_template_keeps_the_link_on_the_first_line_and_wraps_the_rest() -> None:
    template = ("{recipient} accepts mail only from known senders. Confirm you are a person at {url} and send "
                "your message again. " + "Der Link gilt zwei Wochen; danach schreiben Sie einfach noch einmal. " * 8)
    from_dict({"domains": {"local": ["example.org"]}, "challenge": {"reply": template}})  # accepted
    lines = reply_lines(replies.challenge_text(template, "alice@example.org", "x@y.test", URL))
    assert lines[0] == ("550-5.7.1 alice@example.org accepts mail only from known senders. "
                        "Confirm you are a person at " + URL)
    assert len(lines) >= 3 and lines[-1].startswith("550 5.7.1 ")
