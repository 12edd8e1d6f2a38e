"""Realistic activity for a test gateway's store: a few hundred decisions over 30 days across every
verdict, pending challenges, screened newsletters and receipts, allow and block entries.

Deterministic (seeded random), so tests can count what they expect.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from sendergate.policy.decide import EventRecord, Verdict
from sendergate.store import Store

PEOPLE = ["anna.schmidt@posteo.de", "ben@harbour-studio.co.uk", "carla.rossi@gmail.com", "dmitri@yandex.ru",
          "eva.lindqvist@telia.se", "farid@proton.me", "grace.kim@outlook.com", "hugo.martin@orange.fr"]
STRANGERS = ["j.doe@freemail.example", "sales@cheap-leads.example", "maria.lopez@startup.example",
             "recruiter@talent-hub.example", "tom@conference-2026.example", "li.wei@university.example",
             "visa-office@travel.example", "nina@photo-club.example"]
AUTOMATED = [("newsletter@mail.bookshop.example", "Your weekly reading list"),
             ("no-reply@parcel-tracker.example", "Your parcel is on its way"),
             ("receipts@coffee-roasters.example", "Receipt for order #%d"),
             ("notifications@code-forge.example", "[code-forge] New comment on issue #%d"),
             ("billing@cloud-host.example", "Invoice %d is ready"),
             ("calendar-notification@meetings.example", "Invitation: planning call")]
SUBJECTS = ["Lunch on Friday?", "Re: the draft contract", "Photos from the weekend", "Quick question",
            "Meeting notes", "Re: Re: invoices for March", "Can you review this?", "Happy birthday!"]
SPAMMERS = ["winner@lottery-prize.example", "pharma@cheap-pills.example", "crypto@moon-coin.example"]


@dataclass
class Seeded:
    user_id: int
    token: str
    address: str
    events: int
    per_verdict: dict[str, int] = field(default_factory=dict)
    pending: list[tuple[int, str, str]] = field(default_factory=list)  # (challenge id, sender, subject)
    allow: list[str] = field(default_factory=list)
    block: list[str] = field(default_factory=list)
    today: dict[str, int] = field(default_factory=dict)


def seed(store: Store, address: str = "alice@example.org", *, events: int = 400, pending: int = 6,
         seed_value: int = 7) -> Seeded:
    rnd = random.Random(seed_value)
    user, token = store.add_user(address, name="Alice Example")
    now = datetime.now(timezone.utc)
    out = Seeded(user.id, token, address, events)
    records: list[EventRecord] = []
    weights = [(Verdict.DELIVERED, 50), (Verdict.CHALLENGED, 12), (Verdict.SCREENED, 10), (Verdict.BULK, 6),
               (Verdict.SPAM, 9), (Verdict.VIRUS, 2), (Verdict.BLOCKED, 4), (Verdict.RELAY_DENIED, 3),
               (Verdict.UNKNOWN_RECIPIENT, 3), (Verdict.TEMPFAIL, 1), (Verdict.OBSERVED, 3)]
    population = [v for v, w in weights for _ in range(w)]
    # the Overview chart shows today and the 29 UTC days before it: stay inside, whatever the time of day
    oldest = datetime.combine(now.date() - timedelta(days=29), datetime.min.time(), tzinfo=timezone.utc)
    span_days = (now - oldest).total_seconds() / 86400
    for i in range(events):
        verdict = rnd.choice(population)
        # most activity is recent; today always has some
        ts = now - timedelta(minutes=i * 0.5) if i < 20 else now - timedelta(days=rnd.uniform(0, span_days))
        if ts.date() != now.date() and ts > now:
            ts = now
        n = rnd.randint(100, 99999)
        recipient = address
        spam_score = None
        virus = ""
        details: dict = {"spf": rnd.choice(["pass", "none", "softfail"]), "dkim": rnd.choice(["pass", "none"])}
        if verdict is Verdict.DELIVERED:
            sender, subject, reason = rnd.choice(PEOPLE), rnd.choice(SUBJECTS), "known sender (allowlist)"
        elif verdict is Verdict.CHALLENGED:
            sender, subject, reason = rnd.choice(STRANGERS), rnd.choice(SUBJECTS), "unknown sender: challenge sent"
        elif verdict in (Verdict.SCREENED, Verdict.BULK):
            sender, subject = rnd.choice(AUTOMATED)
            subject = subject % n if "%d" in subject else subject
            reason = ("automated sender with aligned DKIM: screened" if verdict is Verdict.SCREENED
                      else "automated sender without aligned DKIM: refused as bulk")
        elif verdict is Verdict.SPAM:
            sender, subject = rnd.choice(SPAMMERS), "You have WON!!!"
            spam_score = round(rnd.uniform(5.5, 25.0), 1)
            reason = f"spam score {spam_score} >= 5.0"
            details["spam_symbols"] = ["BAYES_99", "URIBL_BLACK"]
        elif verdict is Verdict.VIRUS:
            sender, subject, virus = rnd.choice(STRANGERS), "Invoice attached", "Eicar-Signature.UNOFFICIAL"
            reason = f"virus found: {virus}"
        elif verdict is Verdict.BLOCKED:
            sender, subject, reason = "pest@annoying.example", "", "sender blocked by recipient"
        elif verdict is Verdict.RELAY_DENIED:
            sender, subject, reason = rnd.choice(SPAMMERS), "", "relaying denied"
            recipient = "victim@elsewhere.example"
        elif verdict is Verdict.OBSERVED:
            sender, subject = rnd.choice(STRANGERS), rnd.choice(SUBJECTS)
            reason = "observe mode; would have been challenged: unknown sender"
        elif verdict is Verdict.UNKNOWN_RECIPIENT:
            sender, subject, reason = rnd.choice(SPAMMERS), "", "no such user here"
            recipient = "bob@example.org"
        else:
            sender, subject, reason = rnd.choice(PEOPLE), rnd.choice(SUBJECTS), "downstream unreachable: 451 4.3.0"
        uid = user.id if verdict not in (Verdict.RELAY_DENIED, Verdict.UNKNOWN_RECIPIENT) else None
        records.append(EventRecord(ts=ts, verdict=verdict, reason=reason, client_ip=f"192.0.2.{rnd.randint(1, 250)}",
                                   helo="mail.example.net", sender=sender, recipient=recipient, user_id=uid,
                                   subject=subject, from_header=sender, message_id=f"<{n}.{i}@mail.example.net>",
                                   size=rnd.randint(2_000, 200_000) if subject else None, spam_score=spam_score,
                                   virus=virus, details=details))
    records.sort(key=lambda r: r.ts)  # ids grow with time, as on a real gateway
    store.add_events(records)
    for r in records:
        if r.user_id == user.id:
            out.per_verdict[r.verdict.value] = out.per_verdict.get(r.verdict.value, 0) + 1
            if r.ts.date() == now.date():
                out.today[r.verdict.value] = out.today.get(r.verdict.value, 0) + 1
    for i in range(pending):
        sender = STRANGERS[i % len(STRANGERS)]
        subject = SUBJECTS[i % len(SUBJECTS)]
        cid, _ = store.open_challenge(user.id, address, sender, ttl=14 * 86400, subject=subject,
                                      client_ip="192.0.2.10")
        out.pending.append((cid, sender, subject))
    for entry in PEOPLE[:5] + ["@harbour-studio.co.uk"]:
        store.add_entry(user.id, "allow", entry, source="confirmed" if "@" in entry[1:] else "manual",
                        note="colleague" if entry.endswith(".co.uk") else "")
        out.allow.append(entry)
    for entry in ["pest@annoying.example", "@cheap-pills.example"]:
        store.add_entry(user.id, "block", entry, note="never again")
        out.block.append(entry)
    return out
