"""Harvesting a big Sent folder from a local Dovecot: first run and incremental run.

    .venv/bin/python tests/bench/bench_imap.py [--messages 100000] [--new 100] [--batch 1000]

Fills a private Dovecot's Sent folder by writing Maildir files directly (as
a server that has held the mail for years would have them; MULTIAPPEND of
100,000 messages alone takes minutes here), lets Dovecot index the folder
once (SELECT), then times:
  1. the first harvest (every header of the folder read, parsed, hashed);
  2. an incremental harvest after 100 new messages were APPENDed.

Targets (issue 7): first run < 60 s, incremental < 2 s. Exits 1 when missed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from imapclient import IMAPClient

from sendergate.contacts import ImapHarvester
from tests.support.dovecot import MAIL_GID, MAIL_UID, DovecotServer
from tests.support.mailgen import OWNER, append, sent_messages

PASSWORD = "bench"


def write_maildir(folder: Path, count: int) -> None:
    """Messages as Dovecot's Maildir `cur/` files, owned by the mail user."""
    cur = folder / "cur"
    stamp = int(time.time()) - count
    for i, msg in enumerate(sent_messages(count)):
        name = f"{stamp + i}.M{i}P1.bench,S={len(msg.raw)}:2,S"
        path = cur / name
        path.write_bytes(msg.raw)
        os.chown(path, MAIL_UID, MAIL_GID)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=100)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    dovecot = DovecotServer()
    try:
        dovecot.add_user(OWNER, PASSWORD)
        with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False) as c:
            c.login(OWNER, PASSWORD)  # creates INBOX and the auto-subscribed Sent
            c.select_folder("Sent")
            c.logout()
        start = time.perf_counter()
        write_maildir(dovecot.maildir(OWNER) / ".Sent", args.messages)
        written = time.perf_counter() - start
        start = time.perf_counter()
        with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False) as c:
            c.login(OWNER, PASSWORD)
            exists = c.select_folder("Sent", readonly=True)[b"EXISTS"]
            c.logout()
        indexed = time.perf_counter() - start
        assert exists == args.messages, exists
        print(f"Sent: {args.messages} messages written in {written:.1f} s, indexed by Dovecot in {indexed:.1f} s")

        harvester = ImapHarvester("127.0.0.1", dovecot.imap_port, security="none", username=OWNER,
                                  password=PASSWORD, own_addresses=[OWNER], batch_size=args.batch)
        start = time.perf_counter()
        first = harvester.harvest()
        first_s = time.perf_counter() - start
        assert first.messages_read == args.messages, first.messages_read
        print(f"first harvest: {first.messages_read} messages, {len(first.contacts)} contacts, "
              f"{len(first.sent_message_id_hashes)} Message-ID hashes in {first_s:.1f} s "
              f"({args.messages / first_s:,.0f} messages/s); target < 60 s")

        with IMAPClient("127.0.0.1", dovecot.imap_port, ssl=False) as c:
            c.login(OWNER, PASSWORD)
            append(c, "Sent", sent_messages(args.new, start=args.messages, pool="newfriend"))
            c.logout()
        start = time.perf_counter()
        second = harvester.harvest(first.state)
        second_s = time.perf_counter() - start
        assert second.messages_read == args.new, second.messages_read
        print(f"incremental harvest: {second.messages_read} new messages, {len(second.contacts)} contacts "
              f"in {second_s:.2f} s; target < 2 s")
    finally:
        start = time.perf_counter()
        dovecot.stop()
        print(f"(Dovecot stopped and its {args.messages}-message Maildir removed in "
              f"{time.perf_counter() - start:.1f} s)")
    return 0 if first_s < 60 and second_s < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
