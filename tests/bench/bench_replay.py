"""A year of a small office's mail, replayed through a real gateway: what legit mail gets in, what bad mail does.

    .venv/bin/python tests/bench/bench_replay.py [--messages 3000] [--seed 12] [--clients 4]
            [--workers 0] [--challenge-ttl 10s] [--out results.json] [--markdown]
            [--set section.key=TOML-value ...] [--signup-tags [unsigned|automated]]
    .venv/bin/python tests/bench/bench_replay.py --compare before.json after.json

Issue 12, deliverable 5: the legit/bad figures before and after closing the ways around the gate.
Not a test: it asserts nothing and prints what happened.

What runs: a real `sendergate gateway` process (tests/support/gateway.py) delivering into a Maildir,
`challenge.allowlist_auth = "relaxed"` (the product default; the test helper sets "off"), every other
key at the code's own default (so `delivery.screened_folder` is whatever the code under test ships),
real clamd and spamd (tests/support/scanners.py; spamd with the stock rules, -L, GTUBE scores 1000),
and the loopback DNS server (tests/support/dns_server.py) serving SPF, DKIM and DMARC records for every
domain below. Messages are DKIM-signed with dkimpy as the senders' servers would sign them. SPF sees
the right client address the way tests/test_gateway_auth.py does it: the whole of 127.0.0.0/8 is
loopback on Linux, so each message connects from its own source address in its sender's network
(127.1/16 the correspondents' servers, 127.2/16 the list servers, 127.3/16 the newsletter senders,
127.4/16 the SRS forwarder, 127.66/16 spammers and attackers ...), which the SPF records name. No
XFORWARD is used, so `smtp.xforward_from` is irrelevant. One address per message also ties every
event (client_ip) to its message, refusals at RCPT included.

One deliberate change to the defaults: `challenge.ttl` is 10 s (`--challenge-ttl`). The year runs
in a few minutes, so with the real 14 days every challenge of the year would be pending at once; a
per-user cap on pending challenges (issue 12) would then refuse first contacts no real office would
lose. 10 s is about two weeks of the stream at the replay's 10-15 messages per second. Outcomes of
code without such a cap do not depend on the TTL (nobody confirms during the replay).

`--set` adds config keys (e.g. `--set delivery.screened_folder='"Screened"'`); keys the code under
test does not know (its own config validation says "unknown key") are dropped with a warning, so one
command runs on old and new code alike.

The office: 3 users (anna, ben, cleo @example.org), each with ~12 allowlisted correspondents (exact
addresses), the three mailing lists as `list:<id>` entries, and ~300 Message-IDs of their own sent
mail, 90 % uploaded (POST /api/v1/sent-ids, as the desktop app's Sent re-sync does) before the
replay, 10 % "sent after the last upload" (never uploaded). The stream spreads over 2026 (Date
headers), in time order; each message is one SMTP session from its own address. A message refused
at RCPT with 452 (one unknown-sender recipient per transaction) is sent again to the others in a
new transaction of the same session, as an MTA would. Strangers who are challenged do not confirm
(the replay measures the first contact).

Categories and proportions (share of messages; at least 5 messages each). A small office on its
own MX; published figures put spam at 50-85 % of raw SMTP connections, but most of that is botnet
traffic that never completes a transaction; we model what reaches DATA, so bad mail is ~45 % here.
Legit mail is dominated by known correspondents (a small office mostly talks to the same people),
then automated mail (newsletters, receipts), lists, and small tails of bounces, auto-replies, MDNs,
forwarding and first contacts. The tails are the point of issue 12 (the null sender, list, reply
and link rules touch exactly them), so they are kept above a handful of messages each.

  legit (~55 %)
    allowlisted, authenticated          22.0  SPF pass from their server, or (1 in 4) sent from
                                              elsewhere with an aligned DKIM signature; half are
                                              replies to the user's mail (In-Reply-To a sent ID)
    allowlisted, domain publishes none   5.0  no SPF, DKIM or DMARC at all (old ISPs, tiny firms)
    new person, first contact            4.0  unknown, mix of authenticated and bare domains
    reply from new address, auth         2.0  In-Reply-To an uploaded sent ID; SPF pass + DKIM
    reply from new address, no auth      1.0  same, domain publishes nothing
    list, DKIM by list domain            4.0  list:dev.lists.oss.example, signed by lists.oss.example
    list, SPF pass only                  2.0  list:members.lists.assoc.example, unsigned
    list, neither (SPF ~all, unlisted)   1.0  list:chat.groups.club.example sent from outside its SPF
    newsletter/receipt, DKIM aligned     7.0  Precedence: bulk + List-Unsubscribe, or orders@/receipts@
    automated, no DKIM                   1.5  alerts@ from a SaaS that does not sign
    bounce, ID uploaded                  0.8  RFC 3464 multipart/report, null sender
    bounce, ID not uploaded              0.3  the same about mail sent after the last upload
    vacation auto-reply                  0.8  Auto-Submitted: auto-replied, In-Reply-To a sent ID;
                                              60 % from <>, 40 % from the correspondent's address
    read receipt (MDN)                   0.4  RFC 8098, null sender, Original-Message-ID a sent ID
    SRS-forwarded from allowlisted       1.0  SRS0 via forward.example (SPF pass for it); 70 % still
                                              carry the friend's DKIM signature, 30 % friend's domain
                                              publishes nothing
    stranger to two users                0.5  one transaction, two recipients
  bad (~45 %)
    spam, plain                         14.0  unknown senders, spammy text spamd scores low
    spam, GTUBE                          6.0  unknown senders, GTUBE in the body
    backscatter                          8.0  null-sender DSNs about Message-IDs nobody here sent;
                                              30 % return the spam (GTUBE) as message/rfc822
    forged allowlisted, -all             2.0  1 in 3 carry GTUBE (all three forged kinds)
    forged allowlisted, ~all             2.0
    forged allowlisted, publishes none   2.0
    copied List-Id                       1.0  allowlisted list's List-Id, attacker's own DKIM, List-Post
    own List-Id, List-Post allowlisted   1.0  List-Post: <mailto:an allowlisted address>
    SRS wrapper                          1.0  SRS0=..=friend=bob@attacker.example, SPF pass for attacker
    Message-ID replay                    1.5  a sent ID copied into References, spam (half GTUBE)
    automated spam, own DKIM             4.0  Precedence: bulk, no-reply@, signed; 1 in 4 GTUBE
    oversize GTUBE, stranger             0.25 > 500 kB, GTUBE in the first part
    oversize GTUBE, automated signed     0.25 the same as signed bulk mail

`--signup-tags` (issue 19): before the replay each user makes a sign-up address (POST /api/v1/tags, no
expiry) for every automated sender of the chosen categories that writes to them, as if they had handed
it out at sign-up, and those messages' envelopes name it instead of the user: `unsigned` moves the
automated senders that sign nothing (alerts@oldsaas.example), `automated` the signed newsletters and
receipts too. The messages are otherwise the same (same seed, same bytes; the To: header keeps the
plain address, which signed mail covers with its signature), so `--compare` pairs them with a run
without the option. The summary's "no action needed" counts legit mail that arrived (inbox or a
folder) with nothing for the user or the sender to do: not challenged, not refused.

Per message and recipient it records the SMTP replies (RCPT, end of DATA, whether a link was
given), the gateway's event (verdict, reason, spam score: a score means spamd looked at it), and
where the message landed (INBOX = the Maildir root's new/, or a subfolder such as .Screened).
Prints a table per category and a summary; `--out` writes everything as JSON; `--compare A B`
prints two runs side by side, with the moves of each message between outcomes (same seed, same
messages).
"""

from __future__ import annotations

import argparse
import base64
import collections
import concurrent.futures
import datetime as dt
import json
import os
import platform
import random
import re
import smtplib
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.gateway import GatewayProcess, loopback_dns, write_config
from tests.support.scanners import GTUBE, start_clamd, start_spamd

REPO = Path(__file__).resolve().parents[2]
USERS = ("anna@example.org", "ben@example.org", "cleo@example.org")
YEAR = 2026

# -- the world: domains, their DNS, their keys --------------------------------------------------------

NET_FRIENDS = 1  # correspondents' own servers (their SPF names 127.1.0.0/16)
NET_LISTS = 2
NET_ESP = 3
NET_FORWARDER = 4
NET_NONE = 9  # servers of domains that publish nothing
NET_NEW = 10  # first-contact and new-address senders at authenticated providers
NET_ELSEWHERE = 11  # correspondents writing from a webmail/phone provider: DKIM only
NET_CLUB_OUT = 13  # the club list's server outside its own SPF
NET_SPAM = 66  # spammers and attackers
NET_BACKSCATTER = 67  # third-party MTAs bouncing forged mail

# domain -> (SPF record or None, DKIM-signs, DMARC record or None)
DOMAINS: dict[str, tuple[str | None, bool, str | None]] = {
    "partner.example": ("v=spf1 ip4:127.1.0.0/16 -all", True, "v=DMARC1; p=reject"),
    "client.example": ("v=spf1 ip4:127.1.0.0/16 -all", True, None),
    "supplier.example": ("v=spf1 ip4:127.1.0.0/16 ~all", True, None),
    "cityhall.example": ("v=spf1 ip4:127.1.0.0/16 ~all", False, None),
    "oldisp.example": (None, False, None),
    "smallfirm.example": (None, False, None),
    "lists.oss.example": ("v=spf1 ip4:127.2.0.0/16 -all", True, None),
    "lists.assoc.example": ("v=spf1 ip4:127.2.0.0/16 -all", False, None),
    "groups.club.example": ("v=spf1 ip4:127.2.1.0/24 ~all", False, None),
    "shop.example": ("v=spf1 ip4:127.3.0.0/16 -all", True, "v=DMARC1; p=reject"),
    "bank.example": ("v=spf1 ip4:127.3.0.0/16 -all", True, "v=DMARC1; p=reject"),
    "airline.example": ("v=spf1 ip4:127.3.0.0/16 ~all", True, "v=DMARC1; p=none"),
    "oldsaas.example": ("v=spf1 ip4:127.3.0.0/16 ~all", False, None),
    "forward.example": ("v=spf1 ip4:127.4.0.0/16 -all", False, None),
    "bigmail.example": ("v=spf1 ip4:127.10.0.0/16 ip4:127.11.0.0/16 -all", True, "v=DMARC1; p=none"),
    "venture.example": ("v=spf1 ip4:127.10.0.0/16 -all", True, None),
    "homeisp.example": (None, False, None),
    "freelance.example": (None, False, None),
    "attacker.example": ("v=spf1 ip4:127.66.0.0/16 -all", True, None),
    "promo.example": ("v=spf1 ip4:127.66.0.0/16 -all", True, None),
    "bestdeals.example": ("v=spf1 ip4:127.66.0.0/16 ~all", True, None),
}
AUTH_FRIEND_DOMAINS = ("partner.example", "client.example", "supplier.example", "cityhall.example")
BARE_FRIEND_DOMAINS = ("oldisp.example", "smallfirm.example")
LISTS = {  # list id -> (list domain, envelope sender, server network)
    "dev.lists.oss.example": ("lists.oss.example", "dev-bounces@lists.oss.example", NET_LISTS),
    "members.lists.assoc.example": ("lists.assoc.example", "members-owner@lists.assoc.example", NET_LISTS),
    "chat.groups.club.example": ("groups.club.example", "chat+bounces@groups.club.example", NET_CLUB_OUT),
}

FIRST = ["Pete", "Maria", "Jonas", "Ines", "Karl", "Lena", "Omar", "Sofia", "Tom", "Ute", "Victor", "Wen",
         "Yara", "Zoe", "Ali", "Bea", "Chen", "Dora", "Emil", "Femi", "Greta", "Hugo", "Ivo", "Jana"]
LAST = ["Berg", "Costa", "Dahl", "Eriksen", "Fischer", "Garcia", "Hansen", "Ito", "Jensen", "Klein",
        "Lopez", "Meyer", "Novak", "Olsen", "Petrov", "Quinn", "Rossi", "Schmidt", "Tanaka", "Weber"]
TOPICS = ["the quarterly report", "Thursday's meeting", "the invoice for October", "the new contract",
          "the site visit", "our project plan", "the budget draft", "the delivery schedule", "the workshop",
          "the tender documents", "the office move", "the training dates", "the annual review"]
SENTENCES = ["I had a look at {t} and have a few comments.", "Could we talk about {t} next week?",
             "Attached are my notes on {t}.", "Thanks for sending {t} so quickly.",
             "There is one open question about {t}.", "Let me know if {t} works for you.",
             "We are still waiting for the signed copy.", "The numbers look fine to me.",
             "I will be in the office on Tuesday and Wednesday.", "Please forward this to your colleague.",
             "Sorry for the late answer, it has been a busy month.", "See you soon."]
SPAM_SUBJECTS = ["You have won", "Limited offer just for you", "Increase your sales", "Crypto profits now",
                 "Re: invoice overdue", "Cheap watches", "Your account will be suspended", "Hot singles",
                 "Loan approved", "SEO services for example.org"]
SPAM_LINES = ["Dear friend, we have a special offer for you.", "Act now! This offer expires today.",
              "Click here to claim your prize: http://win.bestdeals.example/claim",
              "100% free, no credit card needed.", "Make money fast from home!!!",
              "Unsubscribe at any time.", "Best prices on the market, guaranteed.",
              "You have been selected for an exclusive reward."]


@dataclass
class Key:
    selector: str
    domain: str
    private_pem: bytes
    public_b64: str


def make_key(domain: str) -> Key:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key("s2026", domain, pem, base64.b64encode(der).decode("ascii"))


def publish_zones(dns: Any, keys: dict[str, Key]) -> None:
    for domain, (spf, _signs, dmarc) in DOMAINS.items():
        dns.add(domain, "A", "192.0.2.10")  # every domain exists; publishing nothing is about TXT
        if spf:
            dns.add_txt(domain, spf)
            dns.add_txt(f"mx.{domain}", spf)  # HELO identity of its servers (null-sender SPF)
        dns.add(f"mx.{domain}", "A", "192.0.2.11")
        if dmarc:
            dns.add_txt(f"_dmarc.{domain}", dmarc)
    for k in keys.values():
        dns.add_txt(f"{k.selector}._domainkey.{k.domain}", f"v=DKIM1; k=rsa; p={k.public_b64}")


# -- messages ---------------------------------------------------------------------------------------

@dataclass
class Msg:
    idx: int
    category: str
    legit: bool
    ip: str
    helo: str
    mail_from: str  # "" for <>
    rcpts: list[str]
    message_id: str
    date: str
    data: bytes = b""
    tagged: dict[str, str] = field(default_factory=dict)  # user -> the sign-up address the envelope names


@dataclass(frozen=True)
class Category:
    name: str
    legit: bool
    weight: float  # percent of messages


CATEGORIES = [
    Category("allowlisted, authenticated", True, 22.0),
    Category("allowlisted, domain publishes none", True, 5.0),
    Category("new person, first contact", True, 4.0),
    Category("reply from new address, auth", True, 2.0),
    Category("reply from new address, no auth", True, 1.0),
    Category("list, DKIM by list domain", True, 4.0),
    Category("list, SPF pass only", True, 2.0),
    Category("list, neither (SPF ~all, unlisted IP)", True, 1.0),
    Category("newsletter/receipt, DKIM aligned", True, 7.0),
    Category("automated, no DKIM", True, 1.5),
    Category("bounce, ID uploaded", True, 0.8),
    Category("bounce, ID not uploaded", True, 0.3),
    Category("vacation auto-reply", True, 0.8),
    Category("read receipt (MDN)", True, 0.4),
    Category("SRS-forwarded from allowlisted", True, 1.0),
    Category("stranger to two users", True, 0.5),
    Category("spam, plain", False, 14.0),
    Category("spam, GTUBE", False, 6.0),
    Category("backscatter", False, 8.0),
    Category("forged allowlisted, -all", False, 2.0),
    Category("forged allowlisted, ~all", False, 2.0),
    Category("forged allowlisted, publishes none", False, 2.0),
    Category("copied List-Id, own DKIM", False, 1.0),
    Category("own List-Id, List-Post allowlisted", False, 1.0),
    Category("SRS wrapper around allowlisted", False, 1.0),
    Category("Message-ID replay", False, 1.5),
    Category("automated spam, own DKIM", False, 4.0),
    Category("oversize GTUBE, stranger", False, 0.25),
    Category("oversize GTUBE, automated signed", False, 0.25),
]
LEGIT = {c.name: c.legit for c in CATEGORIES}
MIN_PER_CATEGORY = 5


def ip(net: int, idx: int) -> str:
    """A source address of its own for message idx, inside the sender's network 127.net/16."""
    return f"127.{net}.{idx // 250 % 250}.{idx % 250 + 1}"


class World:
    """The office and everyone who writes to it; all choices come from one seeded generator."""

    def __init__(self, seed: int, keys: dict[str, Key]) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.keys = keys
        rng = self.rng
        self.friends: dict[str, list[tuple[str, str]]] = {}  # user -> [(display name, address)]
        for user in USERS:
            people = []
            for domain in AUTH_FRIEND_DOMAINS * 2 + BARE_FRIEND_DOMAINS * 2:
                name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                people.append((name, f"{name.split()[0].lower()}.{name.split()[1].lower()}@{domain}"))
            self.friends[user] = list(dict.fromkeys(people))
        self.sent: dict[str, list[str]] = {}  # user -> uploaded sent Message-IDs
        self.unsent_upload: dict[str, list[str]] = {}  # sent after the last upload
        for user in USERS:
            ids = [f"<{YEAR}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}.{rng.getrandbits(48):012x}"
                   f"@example.org>" for _ in range(300)]
            self.sent[user], self.unsent_upload[user] = ids[:270], ids[270:]

    # -- pieces --
    def person(self, domain: str) -> tuple[str, str]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        return f"{first} {last}", f"{first.lower()}.{last.lower()}{self.rng.randrange(100)}@{domain}"

    def friend(self, user: str, domains: tuple[str, ...]) -> tuple[str, str]:
        return self.rng.choice([f for f in self.friends[user] if f[1].split("@")[1] in domains])

    def text(self, lines: int = 4) -> str:
        topic = self.rng.choice(TOPICS)
        body = [self.rng.choice(SENTENCES).format(t=topic) for _ in range(lines)]
        return "Hello,\r\n\r\n" + "\r\n".join(body) + "\r\n\r\nBest regards\r\n"

    def spam(self, gtube: bool) -> str:
        lines = self.rng.sample(SPAM_LINES, 4)
        if gtube:
            lines.insert(2, GTUBE.decode())
        return "\r\n".join(lines) + "\r\n"

    def spammer(self) -> tuple[str, str]:
        n = self.rng.randrange(100000)
        local = self.rng.choice(["info", "sales", "win", "promo"])
        return f"{self.rng.choice(FIRST)}", f"{local}{n}@spm{n % 97}.example"


def compose(headers: list[tuple[str, str]], body: str, content_type: str = "text/plain; charset=utf-8") -> bytes:
    lines = [f"{k}: {v}" for k, v in headers]
    lines += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode("utf-8")


def sign(msg: bytes, key: Key, extra: tuple[bytes, ...] = ()) -> bytes:
    import dkim
    sig = dkim.sign(msg, key.selector.encode(), key.domain.encode(), key.private_pem,
                    include_headers=[b"from", b"to", b"subject", b"date", b"message-id", *extra])
    return sig + msg


LIST_SIGNED = (b"list-id", b"list-post", b"list-unsubscribe", b"precedence")


def dsn(reporting: str, rcpt: str, original_headers: str, *, returned_body: str | None = None) -> str:
    """An RFC 3464 report body (multipart/report; boundary "dsn-b")."""
    arrival = "Mon, 12 Jan 2026 10:00:00 +0000"
    last = "text/rfc822-headers" if returned_body is None else "message/rfc822"
    returned = original_headers + ("" if returned_body is None else "\r\n" + returned_body)
    return (
        "--dsn-b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system at host {reporting}.\r\n\r\nI'm sorry to have to inform you that your "
        "message could not\r\nbe delivered to one or more recipients.\r\n\r\n"
        f"<{rcpt}>: host {reporting} said: 550 5.1.1 User unknown\r\n\r\n"
        "--dsn-b\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting}\r\nArrival-Date: {arrival}\r\n\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\nOriginal-Recipient: rfc822;{rcpt}\r\nAction: failed\r\n"
        f"Status: 5.1.1\r\nRemote-MTA: dns; {reporting}\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
        f"--dsn-b\r\nContent-Type: {last}\r\n\r\n{returned}\r\n--dsn-b--\r\n"
    )


def build(world: World, cat: str, idx: int, when: dt.datetime) -> Msg:
    """One message of category `cat`: envelope, client address, headers, body, signature."""
    rng = world.rng
    user = rng.choice(USERS)
    date = when.strftime("%a, %d %b %Y %H:%M:%S +0000")
    mid = f"<r{world.seed}.{idx}.{rng.getrandbits(32):08x}@%s>"
    gtube_third = rng.random() < 1 / 3

    def std(from_name: str, from_addr: str, subject: str, to: str = user,
            extra: list[tuple[str, str]] | None = None) -> tuple[list[tuple[str, str]], str]:
        m = mid % from_addr.split("@")[1]
        h = [("From", f"{from_name} <{from_addr}>"), ("To", to), ("Subject", subject), ("Date", date),
             ("Message-ID", m)]
        return h + (extra or []), m

    def msg(ipaddr: str, helo: str, mail_from: str, data: bytes, message_id: str,
            rcpts: list[str] | None = None) -> Msg:
        return Msg(idx, cat, LEGIT[cat], ipaddr, helo, mail_from, rcpts or [user], message_id, date, data)

    topic_subject = rng.choice(TOPICS).capitalize()
    if cat == "allowlisted, authenticated":
        name, addr = world.friend(user, AUTH_FRIEND_DOMAINS)
        domain = addr.split("@")[1]
        extra = [("In-Reply-To", rng.choice(world.sent[user]))] if rng.random() < 0.5 else []
        h, m = std(name, addr, ("Re: " if extra else "") + topic_subject, extra=extra)
        data = compose(h, world.text())
        elsewhere = DOMAINS[domain][1] and rng.random() < 0.25
        if DOMAINS[domain][1]:
            data = sign(data, world.keys[domain])
        net = NET_ELSEWHERE if elsewhere else NET_FRIENDS
        return msg(ip(net, idx), f"mx.{domain}" if not elsewhere else "smtp.phone.example", addr, data, m)
    if cat == "allowlisted, domain publishes none":
        name, addr = world.friend(user, BARE_FRIEND_DOMAINS)
        h, m = std(name, addr, topic_subject)
        return msg(ip(NET_NONE, idx), f"mx.{addr.split('@')[1]}", addr, compose(h, world.text()), m)
    if cat in ("new person, first contact", "stranger to two users"):
        domain = rng.choice(["bigmail.example", "venture.example", "homeisp.example", "freelance.example"])
        name, addr = world.person(domain)
        rcpts = [user] if cat.startswith("new") else rng.sample(USERS, 2)
        h, m = std(name, addr, f"Question about {rng.choice(TOPICS)}", to=", ".join(rcpts))
        data = compose(h, world.text(5))
        net = NET_NEW if DOMAINS[domain][0] else NET_NONE
        if DOMAINS[domain][1]:
            data = sign(data, world.keys[domain])
        return msg(ip(net, idx), f"mx.{domain}", addr, data, m, rcpts)
    if cat.startswith("reply from new address"):
        auth = cat.endswith(", auth")
        domain = rng.choice(["bigmail.example", "venture.example"] if auth else ["homeisp.example",
                                                                                  "freelance.example"])
        name, addr = world.person(domain)
        ref = rng.choice(world.sent[user])
        h, m = std(name, addr, "Re: " + topic_subject, extra=[("In-Reply-To", ref), ("References", ref)])
        data = compose(h, world.text())
        if auth:
            data = sign(data, world.keys[domain])
        return msg(ip(NET_NEW if auth else NET_NONE, idx), f"mx.{domain}", addr, data, m)
    if cat.startswith("list, "):
        list_id = {"list, DKIM by list domain": "dev.lists.oss.example", "list, SPF pass only":
                   "members.lists.assoc.example"}.get(cat, "chat.groups.club.example")
        list_domain, envelope, net = LISTS[list_id]
        name, poster = world.person(rng.choice(["bigmail.example", "homeisp.example", "venture.example"]))
        local = list_id.split(".")[0]
        h, m = std(name, poster, f"[{local}] {topic_subject}", to=f"{local}@{list_domain}", extra=[
            ("List-Id", f"{local.title()} <{list_id}>"), ("List-Post", f"<mailto:{local}@{list_domain}>"),
            ("List-Unsubscribe", f"<mailto:{local}-leave@{list_domain}>"), ("Precedence", "list")])
        data = compose(h, world.text())
        if DOMAINS[list_domain][1]:
            data = sign(data, world.keys[list_domain], LIST_SIGNED)
        return msg(ip(net, idx), f"mx.{list_domain}", envelope, data, m)
    if cat == "newsletter/receipt, DKIM aligned":
        domain = rng.choice(["shop.example", "bank.example", "airline.example"])
        if rng.random() < 0.6:
            h, m = std(domain.split(".")[0].title(), f"news@{domain}", "Our offers this month", extra=[
                ("List-Unsubscribe", f"<mailto:leave@{domain}>"), ("Precedence", "bulk")])
        else:
            local = {"shop.example": "orders", "bank.example": "statements", "airline.example": "bookings"}[domain]
            h, m = std(domain.split(".")[0].title(), f"{local}@{domain}", f"Your {local[:-1]} {rng.randrange(10**6)}")
        data = sign(compose(h, world.text(3)), world.keys[domain], (b"list-unsubscribe", b"precedence"))
        return msg(ip(NET_ESP, idx), f"mx.{domain}", f"bounces@{domain}", data, m)
    if cat == "automated, no DKIM":
        h, m = std("OldSaaS", "alerts@oldsaas.example", f"Daily report {when:%Y-%m-%d}")
        return msg(ip(NET_ESP, idx), "mx.oldsaas.example", "alerts@oldsaas.example", compose(h, world.text(2)), m)
    if cat.startswith("bounce, "):
        ref = rng.choice(world.sent[user] if cat.endswith("uploaded") and "not" not in cat
                         else world.unsent_upload[user])
        domain = rng.choice(AUTH_FRIEND_DOMAINS + BARE_FRIEND_DOMAINS)
        reporting = f"mx.{domain}"
        gone = f"left.company{rng.randrange(100)}@{domain}"
        original = (f"Return-Path: <{user}>\r\nFrom: {user}\r\nTo: {gone}\r\nSubject: {topic_subject}\r\n"
                    f"Date: {date}\r\nMessage-ID: {ref}\r\n")
        h, m = std("Mail Delivery System", f"MAILER-DAEMON@{reporting}", "Undelivered Mail Returned to Sender",
                   extra=[("Auto-Submitted", "auto-replied")])
        data = compose(h, dsn(reporting, gone, original),
                       'multipart/report; report-type=delivery-status; boundary="dsn-b"')
        net = NET_FRIENDS if DOMAINS[domain][0] else NET_NONE
        return msg(ip(net, idx), reporting, "", data, m)
    if cat == "vacation auto-reply":
        name, addr = world.friend(user, AUTH_FRIEND_DOMAINS + BARE_FRIEND_DOMAINS)
        domain = addr.split("@")[1]
        ref = rng.choice(world.sent[user])
        h, m = std(name, addr, f"Out of office: {topic_subject}", extra=[
            ("Auto-Submitted", "auto-replied"), ("In-Reply-To", ref), ("References", ref)])
        data = compose(h, "I am out of the office until Monday and will answer your mail then.\r\n")
        if DOMAINS[domain][1]:
            data = sign(data, world.keys[domain], (b"auto-submitted", b"in-reply-to"))
        net = NET_FRIENDS if DOMAINS[domain][0] else NET_NONE
        return msg(ip(net, idx), f"mx.{domain}", "" if rng.random() < 0.6 else addr, data, m)
    if cat == "read receipt (MDN)":
        name, addr = world.friend(user, AUTH_FRIEND_DOMAINS + BARE_FRIEND_DOMAINS)
        domain = addr.split("@")[1]
        ref = rng.choice(world.sent[user])
        extra = [("In-Reply-To", ref)] if rng.random() < 0.5 else []
        h, m = std(name, addr, f"Read: {topic_subject}", extra=extra)
        body = ("--mdn-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe message was displayed.\r\n\r\n"
                "--mdn-b\r\nContent-Type: message/disposition-notification\r\n\r\n"
                f"Reporting-UA: mail.{domain}; Thunderbird\r\nFinal-Recipient: rfc822;{addr}\r\n"
                f"Original-Message-ID: {ref}\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n\r\n"
                "--mdn-b--\r\n")
        data = compose(h, body, 'multipart/report; report-type=disposition-notification; boundary="mdn-b"')
        if DOMAINS[domain][1]:
            data = sign(data, world.keys[domain])
        net = NET_FRIENDS if DOMAINS[domain][0] else NET_NONE
        return msg(ip(net, idx), f"mx.{domain}", "", data, m)
    if cat == "SRS-forwarded from allowlisted":
        signed = rng.random() < 0.7
        name, addr = world.friend(user, tuple(d for d in AUTH_FRIEND_DOMAINS if DOMAINS[d][1]) if signed
                                  else BARE_FRIEND_DOMAINS)
        local, domain = addr.split("@")
        h, m = std(name, addr, topic_subject)
        data = compose(h, world.text())
        if signed:
            data = sign(data, world.keys[domain])
        srs = f"SRS0={rng.getrandbits(16):04x}={rng.choice('ABCDEFGH')}{rng.choice('0123456789')}={domain}={local}"
        return msg(ip(NET_FORWARDER, idx), "mx.forward.example", f"{srs}@forward.example", data, m)
    # -- bad --
    if cat.startswith("spam, "):
        name, addr = world.spammer()
        h, m = std(name, addr, rng.choice(SPAM_SUBJECTS))
        return msg(ip(NET_SPAM, idx), f"host-{idx}.dyn.example", addr,
                   compose(h, world.spam(cat.endswith("GTUBE"))), m)
    if cat == "backscatter":
        isp = f"mx.isp{rng.randrange(40)}.example"
        forged_id = f"<{rng.getrandbits(64):016x}@example.org>"
        victim = f"{rng.choice(['x', 'info', 'sales'])}{rng.randrange(1000)}@{rng.choice(['isp3', 'isp9'])}.example"
        original = (f"Return-Path: <{user}>\r\nFrom: {user}\r\nTo: {victim}\r\nSubject: {rng.choice(SPAM_SUBJECTS)}\r\n"
                    f"Date: {date}\r\nMessage-ID: {forged_id}\r\n")
        returned = world.spam(True) if rng.random() < 0.3 else None
        h, m = std("Mail Delivery System", f"MAILER-DAEMON@{isp}", "Undelivered Mail Returned to Sender",
                   extra=[("Auto-Submitted", "auto-replied")])
        data = compose(h, dsn(isp, victim, original, returned_body=returned),
                       'multipart/report; report-type=delivery-status; boundary="dsn-b"')
        return msg(ip(NET_BACKSCATTER, idx), isp, "", data, m)
    if cat.startswith("forged allowlisted"):
        domains = {"-all": ("partner.example", "client.example"), "~all": ("supplier.example", "cityhall.example"),
                   "none": BARE_FRIEND_DOMAINS}[cat.split(", ")[1].split()[-1]]
        name, addr = world.friend(user, domains)
        h, m = std(name, addr, rng.choice(["Urgent: payment", "Invoice attached", "Quick favour"]))
        body = world.spam(gtube_third) if gtube_third else world.text() + "Please pay the invoice today.\r\n"
        return msg(ip(NET_SPAM, idx), f"host-{idx}.dyn.example", addr, compose(h, body), m)
    if cat == "copied List-Id, own DKIM":
        h, m = std("Dev list", "dev@attacker.example", "[dev] " + rng.choice(SPAM_SUBJECTS), extra=[
            ("List-Id", "Dev <dev.lists.oss.example>"), ("List-Post", "<mailto:dev@attacker.example>"),
            ("List-Unsubscribe", "<mailto:leave@attacker.example>")])
        data = sign(compose(h, world.spam(gtube_third)), world.keys["attacker.example"], LIST_SIGNED)
        return msg(ip(NET_SPAM, idx), "mx.attacker.example", "bounces@attacker.example", data, m)
    if cat == "own List-Id, List-Post allowlisted":
        _, friend = world.friend(user, AUTH_FRIEND_DOMAINS + BARE_FRIEND_DOMAINS)
        h, m = std("Deals", "deals@attacker.example", rng.choice(SPAM_SUBJECTS), extra=[
            ("List-Id", "Deals <deals.attacker.example>"), ("List-Post", f"<mailto:{friend}>"),
            ("List-Unsubscribe", "<mailto:leave@attacker.example>")])
        data = sign(compose(h, world.spam(gtube_third)), world.keys["attacker.example"], LIST_SIGNED)
        return msg(ip(NET_SPAM, idx), "mx.attacker.example", "bounces@attacker.example", data, m)
    if cat == "SRS wrapper around allowlisted":
        name, addr = world.friend(user, AUTH_FRIEND_DOMAINS + BARE_FRIEND_DOMAINS)
        local, domain = addr.split("@")
        h, m = std(name, addr, rng.choice(["Invoice attached", "Quick favour", "Re: " + topic_subject]))
        srs = f"SRS0={rng.getrandbits(16):04x}=XY={domain}={local}@attacker.example"
        return msg(ip(NET_SPAM, idx), "mx.attacker.example", srs, compose(h, world.spam(gtube_third)), m)
    if cat == "Message-ID replay":
        name, addr = world.spammer()
        ref = rng.choice(world.sent[user])
        h, m = std(name, addr, "Re: " + topic_subject, extra=[("References", ref)])
        return msg(ip(NET_SPAM, idx), f"host-{idx}.dyn.example", addr, compose(h, world.spam(rng.random() < 0.5)), m)
    if cat == "automated spam, own DKIM":
        domain = rng.choice(["promo.example", "bestdeals.example", "attacker.example"])
        h, m = std("Offers", f"no-reply@{domain}", rng.choice(SPAM_SUBJECTS), extra=[
            ("Precedence", "bulk"), ("List-Unsubscribe", f"<mailto:leave@{domain}>")])
        data = sign(compose(h, world.spam(rng.random() < 0.25)), world.keys[domain], (b"precedence",))
        return msg(ip(NET_SPAM, idx), f"mx.{domain}", f"no-reply@{domain}", data, m)
    if cat.startswith("oversize GTUBE"):
        automated = cat.endswith("automated signed")
        domain = "promo.example"
        name, addr = ("Offers", f"no-reply@{domain}") if automated else world.spammer()
        extra = [("Precedence", "bulk")] if automated else []
        h, m = std(name, addr, "Catalogue " + rng.choice(SPAM_SUBJECTS), extra=extra)
        blob = base64.encodebytes(rng.randbytes(520_000)).decode().replace("\n", "\r\n")
        body = (f"--big-b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{world.spam(True)}\r\n"
                f"--big-b\r\nContent-Type: application/pdf; name=catalogue.pdf\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{blob}--big-b--\r\n")
        data = compose(h, body, 'multipart/mixed; boundary="big-b"')
        if automated:
            data = sign(data, world.keys[domain], (b"precedence",))
        return msg(ip(NET_SPAM, idx), f"mx.{domain}" if automated else f"host-{idx}.dyn.example", addr, data, m)
    raise ValueError(cat)


def generate(messages: int, seed: int, keys: dict[str, Key]) -> tuple[World, list[Msg]]:
    world = World(seed, keys)
    rng = world.rng
    total = sum(c.weight for c in CATEGORIES)
    counts = {c.name: max(MIN_PER_CATEGORY, round(c.weight / total * messages)) for c in CATEGORIES}
    names = [n for n, k in counts.items() for _ in range(k)]
    rng.shuffle(names)
    start = dt.datetime(YEAR, 1, 1, tzinfo=dt.timezone.utc)
    times = sorted(start + dt.timedelta(seconds=rng.uniform(0, 365 * 86400)) for _ in names)
    return world, [build(world, cat, i, when) for i, (cat, when) in enumerate(zip(names, times, strict=True))]


# -- the gateway ------------------------------------------------------------------------------------

def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise SystemExit(f"--set {item!r}: expected section.key=TOML-value")
        try:
            parsed = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            parsed = value  # a bare word: take it as a string
        out.setdefault(section, {})[name] = parsed
    return out


def drop_unknown_keys(gw: GatewayProcess) -> list[str]:
    """Remove keys the code under test does not know (its own validation says so); returns them."""
    from sendergate.config import ConfigError, from_dict
    dropped: list[str] = []
    for _ in range(3):
        try:
            from_dict(tomllib.loads(gw.config_path.read_text()), str(gw.config_path))
            return dropped
        except ConfigError as exc:
            unknown = [k for k, m in exc.problems if m.startswith("unknown")]
            if not unknown:
                raise
            for key in unknown:
                section, _, name = key.partition(".")
                if name:
                    gw.sections.get(section, {}).pop(name, None)
                else:
                    gw.sections.pop(section, None)
                dropped.append(key)
            write_config(gw.config_path, gw.sections)
    return dropped


def upload_sent_ids(gw: GatewayProcess, token: str, ids: list[str]) -> int:
    from sendergate.store import hash_message_id
    body = json.dumps({"hashes": [hash_message_id(i) for i in ids]}).encode()
    req = urllib.request.Request(f"{gw.http_url}/api/v1/sent-ids", data=body, method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["added"]


# --signup-tags: the automated senders the users signed up with a sign-up address (issue 19)
SIGNUP_CATEGORIES = {"unsigned": ("automated, no DKIM",),
                     "automated": ("automated, no DKIM", "newsletter/receipt, DKIM aligned")}


def site_of(m: Msg) -> str:
    """The site a sign-up address was made for: the sender domain's first label (alerts@oldsaas.example:
    oldsaas), the name a user would type."""
    return m.mail_from.rpartition("@")[2].split(".")[0]


def create_signup_tags(gw: GatewayProcess, tokens: dict[str, str], msgs: list[Msg], which: str) -> dict[str, int]:
    """Each user makes a sign-up address (POST /api/v1/tags, no expiry) for every site of the chosen
    categories that writes to them, as at sign-up; those messages' envelopes then name it. The
    messages themselves (and the random stream that made them) stay as they were: same seed, same mail."""
    wanted = {(r, site_of(m)) for m in msgs if m.category in SIGNUP_CATEGORIES[which] for r in m.rcpts}
    made: dict[tuple[str, str], str] = {}
    for user, site in sorted(wanted):
        body = json.dumps({"address": user, "name": site, "expires": None, "dated": False}).encode()
        req = urllib.request.Request(f"{gw.http_url}/api/v1/tags", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {tokens[user]}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            made[(user, site)] = json.loads(r.read())["address"]
    moved: dict[str, int] = collections.Counter()
    for m in msgs:
        if m.category in SIGNUP_CATEGORIES[which]:
            m.tagged = {r: made[(r, site_of(m))] for r in m.rcpts}
            moved[m.category] += 1
    print(f"sign-up addresses: {len(made)} made ({', '.join(sorted(set(made.values())))}); "
          f"messages sent to them: {dict(moved)}", file=sys.stderr)
    return dict(moved)


def setup_store(gw: GatewayProcess, world: World) -> dict[str, str]:
    tokens = {}
    for user in USERS:
        u, token = gw.store.add_user(user, name=user.split("@")[0].title())
        tokens[user] = token
        for _name, addr in world.friends[user]:
            gw.store.add_entry(u.id, "allow", addr)
        for list_id in LISTS:
            gw.store.add_entry(u.id, "allow", f"list:{list_id}")
    return tokens


# -- sending -----------------------------------------------------------------------------------------

def send(port: int, m: Msg) -> dict[str, Any]:
    """One SMTP session from the message's own address; recipients deferred with 4xx at RCPT are sent
    in a further transaction of the same session (up to 3), as an MTA would."""
    out: dict[str, Any] = {"rcpt": {}, "data": {}, "error": "", "seconds": 0.0}
    started = time.monotonic()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120, source_address=(m.ip, 0)) as s:
            s.ehlo(m.helo)
            pending = list(m.rcpts)
            for _ in range(3):
                code, text = s.mail(m.mail_from)
                if code != 250:
                    for r in pending:
                        out["rcpt"][r] = [code, text.decode("utf-8", "replace")]
                    break
                accepted, deferred = [], []
                for r in pending:
                    code, text = s.rcpt(m.tagged.get(r, r))  # results stay keyed by the user
                    out["rcpt"][r] = [code, text.decode("utf-8", "replace")]
                    (accepted if code == 250 else deferred if 400 <= code < 500 else []).append(r)
                if accepted:
                    try:
                        code, text = s.data(m.data)
                    except smtplib.SMTPDataError as exc:
                        code, text = exc.smtp_code, exc.smtp_error
                    for r in accepted:
                        out["data"][r] = [code, text.decode("utf-8", "replace")]
                else:
                    s.rset()
                if not deferred or not accepted:
                    break  # nothing left, or the server defers everything: an MTA would retry later
                pending = deferred
    except (OSError, smtplib.SMTPException) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["seconds"] = time.monotonic() - started
    return out


def replay(port: int, msgs: list[Msg], clients: int) -> list[dict[str, Any]]:
    results: list[dict[str, Any] | None] = [None] * len(msgs)
    done = [0]
    lock = threading.Lock()
    started = time.monotonic()

    def one(i: int) -> None:
        results[i] = send(port, msgs[i])
        with lock:
            done[0] += 1
            if done[0] % 250 == 0:
                rate = done[0] / (time.monotonic() - started)
                print(f"  {done[0]}/{len(msgs)} sent ({rate:.1f} msg/s)", file=sys.stderr)

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(len(msgs))))
    return [r for r in results if r is not None]


# -- reading back what happened --------------------------------------------------------------------

_MID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.I | re.M)


def maildir_index(root: Path) -> dict[str, list[tuple[str, str]]]:
    """Message-ID -> [(mailbox directory, folder)], folder "INBOX" for the Maildir root's new/ or cur/."""
    found: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    if not root.exists():
        return found
    for path in root.rglob("*"):
        if not path.is_file() or path.parent.name not in ("new", "cur"):
            continue
        folder_dir = path.parent.parent
        folder = "INBOX" if folder_dir.name == "Maildir" else folder_dir.name.lstrip(".")
        parts = path.relative_to(root).parts
        mailbox = parts[0]
        raw = path.read_bytes()
        end = raw.find(b"\r\n\r\n")
        head = raw[: end if end >= 0 else 200_000]
        mm = _MID.search(head)
        if mm:
            found[mm.group(1).decode("utf-8", "replace")].append((mailbox.lower(), folder))
    return found


def read_events(gw: GatewayProcess) -> dict[str, list[dict[str, Any]]]:
    by_ip: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in gw.events():
        r = row._mapping
        details = r.get("details")
        try:
            details = json.loads(details) if isinstance(details, str) else (details or {})
        except ValueError:
            details = {"raw": details}
        by_ip[r.get("client_ip") or ""].append({
            "verdict": r.get("verdict"), "reason": r.get("reason"), "recipient": (r.get("recipient") or "").lower(),
            "spam_score": r.get("spam_score"), "message_id": r.get("message_id"), "details": details,
            "tag": r.get("tag")})
    return by_ip


def classify(rcpt: str, sent: dict[str, Any], events: list[dict[str, Any]],
             places: list[tuple[str, str]], tag_address: str = "") -> dict[str, Any]:
    """The outcome of one message for one recipient (the user; `tag_address` when the envelope named
    their sign-up address instead: its event may name either, the mail lands in the user's Maildir)."""
    names = {rcpt, tag_address.lower()} - {""}
    mine = [e for e in events if e["recipient"].strip("<>") in names] or \
        ([e for e in events if not e["recipient"]] if len(events) == 1 else [])
    rcpt_reply = sent["rcpt"].get(rcpt)
    data_reply = sent["data"].get(rcpt)
    final = data_reply or rcpt_reply
    where = [folder for mailbox, folder in places if mailbox == rcpt]
    scanned = any(e["spam_score"] is not None for e in mine)
    if where:
        outcome = "inbox" if "INBOX" in where else "screened-folder"
    elif final is not None and final[0] >= 500:
        outcome = "challenged" if "/c/" in final[1] else "refused"
    elif final is not None and final[0] >= 400:
        outcome = "tempfail"
    elif sent["error"] or final is None:
        outcome = "error"  # the session broke before this recipient got its answer
    else:
        outcome = "accepted-not-found"
    return {"recipient": rcpt, "tag_address": tag_address, "outcome": outcome, "folders": where,
            "spam_scanned": scanned, "tags": [e.get("tag") for e in mine if e.get("tag")],
            "verdicts": [e["verdict"] for e in mine], "reasons": [e["reason"] for e in mine],
            "spam_scores": [e["spam_score"] for e in mine],
            "spam_skipped": [e["details"].get("scan", "") for e in mine if e["details"].get("scan")],
            "rcpt_reply": rcpt_reply, "data_reply": data_reply, "error": sent["error"]}


# -- reporting --------------------------------------------------------------------------------------

COLUMNS = ["inbox", "screened-folder", "challenged", "refused", "tempfail", "error", "accepted-not-found"]
SHORT = {"inbox": "inbox", "screened-folder": "Screened", "challenged": "chall.", "refused": "refused",
         "tempfail": "4xx", "error": "error", "accepted-not-found": "lost"}


def tally(units: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for c in CATEGORIES:
        table[c.name] = {"legit": c.legit, "n": 0, **{k: 0 for k in COLUMNS}, "spamd": 0,
                         "verdicts": collections.Counter()}
    for u in units:
        row = table.setdefault(u["category"], {"legit": u["legit"], "n": 0, **{k: 0 for k in COLUMNS},
                                                "spamd": 0, "verdicts": collections.Counter()})
        row["n"] += 1
        row[u["outcome"]] += 1
        row["spamd"] += u["spam_scanned"]
        for v in u["verdicts"] or ["(no event)"]:
            row["verdicts"][v] += 1
    return table


def summary(units: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    legit = [u for u in units if u["legit"]]
    bad = [u for u in units if not u["legit"]]

    def count(us: list[dict[str, Any]], **kw: Any) -> int:
        return sum(all(u.get(k) == v for k, v in kw.items()) for u in us)
    return {
        "legit": {"n": len(legit),
                  "no action needed": sum(u["outcome"] in ("inbox", "screened-folder") for u in legit),
                  "inbox": count(legit, outcome="inbox"),
                  "screened": count(legit, outcome="screened-folder"),
                  "challenged": count(legit, outcome="challenged"),
                  "refused-without-link": count(legit, outcome="refused"),
                  "tempfail/error": sum(u["outcome"] in ("tempfail", "error", "accepted-not-found") for u in legit),
                  "spam-scanned": count(legit, spam_scanned=True)},
        "bad": {"n": len(bad), "reached inbox": count(bad, outcome="inbox"),
                "reached screened": count(bad, outcome="screened-folder"),
                "spam-scanned": count(bad, spam_scanned=True),
                "refused (5xx)": sum(u["outcome"] in ("challenged", "refused") for u in bad),
                "of which with a link": count(bad, outcome="challenged"),
                "tempfail/error": sum(u["outcome"] in ("tempfail", "error", "accepted-not-found") for u in bad),
                "backscatter in inbox": count([u for u in bad if u["category"] == "backscatter"], outcome="inbox"),
                "GTUBE-carrying": count(bad, gtube=True),
                "GTUBE-carrying delivered": sum(u.get("gtube", False) and u["outcome"] in ("inbox", "screened-folder")
                                                for u in bad)},
    }


def print_table(units: list[dict[str, Any]], title: str) -> None:
    table = tally(units)
    cols = [c for c in COLUMNS if any(r[c] for r in table.values()) or c in COLUMNS[:4]]
    print(f"\n{title}")
    head = f"{'category':40} {'n':>5} " + " ".join(f"{SHORT[c]:>8}" for c in cols) + f" {'spamd':>6}  verdicts"
    print(head)
    for legit in (True, False):
        print(("-- legit " if legit else "-- bad ") + "-" * (len(head) - 10))
        for name, r in table.items():
            if r["legit"] != legit or not r["n"]:
                continue
            verdicts = " ".join(f"{v}:{n}" for v, n in sorted(r["verdicts"].items(), key=lambda x: -x[1]))
            print(f"{name:40} {r['n']:5} " + " ".join(f"{r[c]:8}" for c in cols) + f" {r['spamd']:6}  {verdicts}")
    broken = [u for u in units if u["outcome"] in ("error", "accepted-not-found")]
    if broken:  # the instrument's own failures, not the gateway's decisions
        print(f"\nWARNING: {len(broken)} message-recipients ended in error or were accepted but not found in "
              f"the Maildir; first: {broken[0]['category']}: {broken[0]['error'] or broken[0]['data_reply']}")
    s = summary(units)
    print("\nsummary (per message and recipient):")
    for side in ("legit", "bad"):
        n = s[side]["n"]
        print(f"  {side:5}: " + ", ".join(f"{k} {v}" + (f" ({100 * v / n:.1f} %)" if k != "n" and n else "")
                                          for k, v in s[side].items()))


def markdown_table(units: list[dict[str, Any]]) -> str:
    table = tally(units)
    lines = ["| category | n | inbox | Screened | challenged | refused, no link | 4xx | spamd | verdicts |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for legit in (True, False):
        for name, r in table.items():
            if r["legit"] != legit or not r["n"]:
                continue
            verdicts = ", ".join(f"{v} {n}" for v, n in sorted(r["verdicts"].items(), key=lambda x: -x[1]))
            lines.append(f"| {'legit' if legit else 'bad'}: {name} | {r['n']} | {r['inbox']} | {r['screened-folder']} "
                         f"| {r['challenged']} | {r['refused']} | {r['tempfail'] + r['error']} | {r['spamd']} "
                         f"| {verdicts} |")
    return "\n".join(lines)


def compare(path_a: str, path_b: str) -> int:
    a, b = (json.loads(Path(p).read_text()) for p in (path_a, path_b))
    ta, tb = tally(a["units"]), tally(b["units"])
    print(f"A: {path_a} ({a['meta'].get('date')}, commit {a['meta'].get('commit', '?')[:10]})")
    print(f"B: {path_b} ({b['meta'].get('date')}, commit {b['meta'].get('commit', '?')[:10]})")
    if (a["meta"].get("seed"), a["meta"].get("messages")) != (b["meta"].get("seed"), b["meta"].get("messages")):
        print("note: different seeds or sizes; the per-message moves below are not meaningful")
    cols = COLUMNS[:5] + ["spamd"]
    head = f"{'category':40} {'n':>9} " + " ".join(f"{SHORT.get(c, c):>11}" for c in cols)
    print("\n" + head + "   (A -> B)")
    for legit in (True, False):
        print(("-- legit " if legit else "-- bad ") + "-" * (len(head) - 10))
        for name in dict.fromkeys([*ta, *tb]):
            ra, rb = ta.get(name), tb.get(name)
            if ra is None or rb is None or ra["legit"] != legit or not (ra["n"] or rb["n"]):
                continue

            def cell(c: str) -> str:
                x, y = ra[c], rb[c]
                return f"{x}" if x == y else f"{x}->{y}"
            print(f"{name:40} {cell('n'):>9} " + " ".join(f"{cell(c):>11}" for c in cols))
    sa, sb = summary(a["units"]), summary(b["units"])
    print("\nsummary A -> B:")
    for side in ("legit", "bad"):
        print(f"  {side:5}: " + ", ".join(f"{k} {sa[side].get(k)}" + (f"->{sb[side].get(k)}"
                                                                      if sb[side].get(k) != sa[side].get(k) else "")
                                          for k in dict.fromkeys([*sa[side], *sb[side]])))
    ub = {(u["message_id"], u["recipient"]): u for u in b["units"]}
    moves: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for u in a["units"]:
        v = ub.get((u["message_id"], u["recipient"]))
        if v is None:
            continue
        wa = f"{u['outcome']}({'/'.join(u['verdicts']) or '-'})"
        wb = f"{v['outcome']}({'/'.join(v['verdicts']) or '-'})"
        if wa != wb:
            moves[("legit: " if u["legit"] else "bad: ") + u["category"]][f"{wa} -> {wb}"] += 1
    if moves:
        print("\nmoves per message (outcome(verdict) A -> B):")
        order = {("legit: " if c.legit else "bad: ") + c.name: i for i, c in enumerate(CATEGORIES)}
        for cat, counter in sorted(moves.items(), key=lambda kv: order.get(kv[0], len(order))):
            for move, n in counter.most_common():
                print(f"  {cat:48} {n:5}  {move}")
    return 0


# -- main -------------------------------------------------------------------------------------------

def git_commit() -> str:
    """HEAD of the checkout under test, "+modified" when its gateway code (app/) differs from HEAD."""
    try:
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return "(not a git checkout)"
        dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "app"],
                               capture_output=True, timeout=10)
        return head.stdout.strip() + ("+modified" if dirty.returncode == 1 else "")
    except OSError:
        return "(git not found)"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=3000, help="messages in the year (default 3000)")
    ap.add_argument("--seed", type=int, default=12)
    ap.add_argument("--clients", type=int, default=4, help="concurrent SMTP clients")
    ap.add_argument("--workers", type=int, default=0, help="gateway workers (0: one per core)")
    ap.add_argument("--out", help="write the raw results here (JSON)")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="extra gateway config (TOML value); keys unknown to the code are dropped")
    ap.add_argument("--challenge-ttl", default="10s",
                    help="challenge.ttl: the year is compressed into minutes (default 10s, about two weeks of "
                         "the stream at 10-15 msg/s), so pending challenges pile up no more than in a real "
                         "fortnight (a per-user cap on pending challenges must not see a year's worth at once)")
    ap.add_argument("--signup-tags", nargs="?", const="unsigned", choices=sorted(SIGNUP_CATEGORIES),
                    help="the users made sign-up addresses (issue 19) for these automated senders and handed "
                         "them out: 'unsigned' (the default when given: the senders that sign nothing) or "
                         "'automated' (the signed newsletters and receipts too); needs code with /api/v1/tags")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    ap.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="print two runs side by side")
    args = ap.parse_args()
    if args.compare:
        return compare(*args.compare)

    t0 = time.monotonic()
    keys = {d: make_key(d) for d, (_spf, signs, _dmarc) in DOMAINS.items() if signs}
    world, msgs = generate(args.messages, args.seed, keys)
    size = sum(len(m.data) for m in msgs)
    print(f"generated {len(msgs)} messages ({size / 2**20:.1f} MiB) in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)
    dns = loopback_dns()
    publish_zones(dns, keys)
    clamd = start_clamd()
    spamd = start_spamd()
    gw = None
    try:
        extra: dict[str, dict[str, Any]] = {
            "challenge": {"allowlist_auth": "relaxed", "ttl": args.challenge_ttl},
            "scan": {"clamd": clamd.unix_spec, "spamd": spamd.unix_spec},
            "dns": {"nameservers": ["{}:{}".format(*dns.address)], "timeout": "2s"},
        }
        for section, values in parse_set(args.set).items():
            extra.setdefault(section, {}).update(values)
        gw = GatewayProcess(workers=args.workers, extra=extra)
        dropped = drop_unknown_keys(gw)
        for key in dropped:
            print(f"warning: the code under test does not know {key}; dropped", file=sys.stderr)
        tokens = setup_store(gw, world)
        gw.start()
        for user in USERS:
            upload_sent_ids(gw, tokens[user], world.sent[user])
        moved = create_signup_tags(gw, tokens, msgs, args.signup_tags) if args.signup_tags else {}
        t1 = time.monotonic()
        sent = replay(gw.smtp_port, msgs, args.clients)
        replay_seconds = time.monotonic() - t1
        time.sleep(1)  # events are durable before each reply; this is only for stragglers
        events = read_events(gw)
        places = maildir_index(gw.maildir)
        config_used = gw.sections
    finally:
        if gw is not None:
            gw.close()
        spamd.stop()
        clamd.stop()

    units = []
    for m, s in zip(msgs, sent, strict=True):
        for rcpt in m.rcpts:
            u = classify(rcpt, s, events.get(m.ip, []), places.get(m.message_id, []), m.tagged.get(rcpt, ""))
            units.append({"idx": m.idx, "category": m.category, "legit": m.legit, "message_id": m.message_id,
                          "ip": m.ip, "mail_from": m.mail_from, "size": len(m.data), "gtube": GTUBE in m.data,
                          "seconds": s["seconds"], **u})
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
            "seed": args.seed, "messages": len(msgs), "clients": args.clients, "workers": args.workers,
            "challenge_ttl": args.challenge_ttl, "signup_tags": args.signup_tags, "moved_to_tags": moved,
            "host": platform.node(), "cores": os.cpu_count(), "python": platform.python_version(),
            "replay_seconds": round(replay_seconds, 1), "dropped_config_keys": dropped,
            "config": {k: v for k, v in config_used.items() if k not in ("store",)},
            "loadavg_after": os.getloadavg()}
    title = (f"Year-like replay: {len(msgs)} messages ({len(units)} message-recipients), seed {args.seed}, "
             + (f"sign-up addresses ({args.signup_tags}), " if args.signup_tags else "") +
             f"{args.clients} clients, commit {meta['commit'][:10]}, {replay_seconds:.0f} s "
             f"({len(msgs) / replay_seconds:.1f} msg/s)")
    print_table(units, title)
    if args.markdown:
        print("\n" + markdown_table(units))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"meta": meta, "units": units}, indent=1, default=str))
        print(f"\nraw results: {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
