"""The refusal text (issue 17 item 6, SPEC §4.2): the link stays on the first line of the reply.

`check-config` and the gateway's own start refuse (one validator, config.from_dict) a challenge
template without {url}, with {url} after a line break, or whose text before {url} would push the first
line past 512 octets with the longest link the configuration makes; each message says how to fix it.
The README's example is the default template rendered, and a real SMTP session sends exactly it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

from sendergate.config import DEFAULT_REPLY, DEFAULT_REPLY_MANY, ConfigError, from_dict
from sendergate.policy import replies
from sendergate.store.engine import new_token
from tests.support.gateway import GatewayProcess
from tests.support.rawsmtp import RawSMTP

ROOT = Path(__file__).resolve().parents[1]
EXIT_CONFIG = 3
README_TOKEN = "8fJk2pQxT0aLmN3vYb7wRc"
PUBLIC_URL = "https://mx.example.org"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sendergate", *args], capture_output=True, text=True, timeout=60)


def config_file(tmp_path: Path, reply: str, public_url: str = PUBLIC_URL) -> Path:
    p = tmp_path / "sendergate.toml"
    # JSON's escaping of a string is valid in a TOML basic string
    p.write_text(f'[domains]\nlocal = ["example.org"]\n[store]\nurl = "sqlite:///{tmp_path}/s.db"\n'
                 f'[http]\npublic_url = {json.dumps(public_url)}\n[challenge]\nreply = {json.dumps(reply)}\n')
    return p


def long_head(n: int) -> str:
    return "{recipient} " + "y" * n + " at {url}"


LONG_HEAD = long_head(400)


@pytest.mark.parametrize("reply, says", [
    ("{recipient} accepts mail only from known senders. Please write again later.",
     ["challenge.reply: has no {url}", "put {url} on its first line"]),
    ("{recipient} accepts mail only from known senders.\nConfirm you are a person at {url}",
     ["challenge.reply: {url} is on line 2", "move {url} to the first line"]),
    ("\n{url}", ["{url} is on line 2"]),
    ("Confirm " + "at the page " * 40 + "{url}", ["text before {url} is too long", "shorten the text before {url} by"]),
])
def test_check_config_refuses_a_template_that_would_not_keep_the_link_first(tmp_path: Path, reply: str,
                                                                            says: list[str]) -> None:
    r = run_cli("check-config", "--config", str(config_file(tmp_path, reply)))
    assert r.returncode == EXIT_CONFIG and "Traceback" not in r.stderr, r.stderr
    for text in says:
        assert text in r.stderr, (text, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1  # one problem, one line


def test_the_room_before_the_link_is_worked_out_from_the_public_url(tmp_path: Path) -> None:
    """The same template fits with a short public URL and not with a long one."""
    assert run_cli("check-config", "--config", str(config_file(tmp_path, LONG_HEAD))).returncode == 0
    long_url = "https://mail-gateway.a-very-long-subdomain-name.example.org/" + "p" * 40
    r = run_cli("check-config", "--config", str(config_file(tmp_path, LONG_HEAD, long_url)))
    assert r.returncode == EXIT_CONFIG and "challenge.reply: the text before {url} is too long" in r.stderr
    link = len(long_url) + len("/c/") + 22
    assert f"({link} characters" in r.stderr  # it names the link it measured
    # and the number it names is exact: shortened by that much it fits, by one less it does not
    over = int(re.search(r"by (\d+) characters", r.stderr).group(1))  # type: ignore[union-attr]
    assert run_cli("check-config", "--config", str(config_file(tmp_path, long_head(400 - over), long_url))
                   ).returncode == 0
    assert run_cli("check-config", "--config", str(config_file(tmp_path, long_head(401 - over), long_url))
                   ).returncode == EXIT_CONFIG


def test_a_public_url_the_link_cannot_carry_is_refused_with_its_key(tmp_path: Path) -> None:
    for url, says in (("https://mx.example.org/" + "x" * 480, "too long"),
                      ("https://mx.example.org/confirm here", "printable ASCII without spaces"),
                      ("https://mx.example.org/\r\n250 OK", "printable ASCII without spaces")):
        r = run_cli("check-config", "--config", str(config_file(tmp_path, DEFAULT_REPLY, url)))
        assert r.returncode == EXIT_CONFIG and "http.public_url: " in r.stderr and says in r.stderr, (url, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1  # the URL's own line break is not echoed as one


def test_the_gateway_refuses_to_start_with_the_same_template(tmp_path: Path) -> None:
    path = config_file(tmp_path, "{recipient} accepts mail only from known senders.\nConfirm at {url}")
    gw = subprocess.run([sys.executable, "-m", "sendergate", "gateway", "--config", str(path)],
                        capture_output=True, text=True, timeout=60)
    assert gw.returncode == EXIT_CONFIG and "challenge.reply: {url} is on line 2" in gw.stderr, gw.stderr
    assert "Traceback" not in gw.stderr


def test_the_validator_agrees_with_the_renderer_at_the_boundary() -> None:
    """Accepted exactly when the renderer keeps the template's wording (it otherwise puts the bare link
    first): every length around the limit, with one or two {recipient}, for a recipient and sender at
    their longest."""
    link = f"{PUBLIC_URL}/c/{README_TOKEN}"
    for before in ("{recipient} accepts only. ", "", "Hi {sender}, {recipient} says ", "{recipient} and {recipient} "):
        for n in range(380, 480):
            template = before + "x" * n + " at {url} and again."
            accepted = replies.challenge_template_problem(template, PUBLIC_URL) is None
            first = replies.challenge_text(template, ["r" * 64 + "@example.org"], "s" * 200 + "@a.example",
                                           link).split("\n")[0]
            assert accepted == (not first.startswith(link)), (before, n)
            assert link in first.split()


def test_the_token_length_the_check_assumes_is_the_token_the_store_issues() -> None:
    assert {len(new_token()) for _ in range(50)} == {replies.LINK_TOKEN_CHARS}


def test_a_template_ending_in_a_line_break_after_the_link_is_fine_and_one_without_a_link_is_not() -> None:
    from_dict({"domains": {"local": ["example.org"]}, "challenge": {"reply": "Confirm at {url}\nThanks."}})
    with pytest.raises(ConfigError) as err:
        from_dict({"domains": {"local": ["example.org"]}, "challenge": {"reply": "no link"}})
    assert err.value.problems == [("challenge.reply", err.value.problems[0][1])]


def readme_refusals() -> list[str]:
    """The 550 examples in the README's "What a sender sees" section, as shown (fenced blocks)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### What a sender sees", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return [b.strip("\n") for b in re.findall(r"```\n(.*?)```", section, re.S) if b.startswith("550")]


def test_the_readme_shows_exactly_what_the_default_template_renders() -> None:
    link = f"{PUBLIC_URL}/c/{README_TOKEN}"
    one = replies.render(550, "5.7.1", replies.challenge_text(DEFAULT_REPLY, ["alice@example.org"],
                                                               "stranger@far.example", link))
    two = replies.render(550, "5.7.1", replies.challenge_text(DEFAULT_REPLY_MANY, ["alice@example.org",
                                                                                 "bob@example.org"],
                                                               "stranger@far.example", link))
    assert readme_refusals() == [one, two]
    assert "\r\n" not in one and "\r\n" not in two  # one line each: the link on the first (and only) line
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", README_TOKEN)


def test_a_real_smtp_session_sends_the_readme_line_with_its_own_link() -> None:
    g = GatewayProcess()  # the default template, public_url https://mx.example.org as in the README
    g.store.add_user("alice@example.org")
    g.start()
    try:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "stranger@far.example", "alice@example.org", "Hello"
        msg["Message-ID"] = "<refusal-text@far.example>"
        msg.set_content("Hello Alice.")
        smtp = RawSMTP(g.smtp_port)
        try:
            smtp.transaction("stranger@far.example", "alice@example.org")
            reply = smtp.cmd(msg.as_bytes().replace(b"\n", b"\r\n") + b".")
        finally:
            smtp.close()
    finally:
        g.close()
    assert "\n" not in reply  # one reply line: RawSMTP joins a multi-line reply's lines with \n
    token = re.search(r"https://mx\.example\.org/c/([A-Za-z0-9_-]{22}) ", reply)
    assert token, reply
    assert reply == readme_refusals()[0].replace(README_TOKEN, token.group(1))
