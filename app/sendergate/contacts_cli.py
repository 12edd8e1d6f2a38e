"""`sendergate allow import FILE|imap[s]://user@host --user U [--dry-run]` (admin side).

Reads an address book or harvests an IMAP account with the same importers as
the desktop app, shows progress, then adds the new addresses to the user's
allowlist (source `import`). IMAP state is kept in the store, so a second run
only reads new mail; the hashed Message-IDs of sent mail are stored for reply
recognition.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any
from urllib.parse import unquote, urlsplit

from .contacts import ContactsError, HarvestResult, ImapHarvester, ImportResult, read_file


def _imap_source(url: str, user_addresses: tuple[str, ...]) -> ImapHarvester:
    parts = urlsplit(url)
    security = {"imaps": "tls", "imap": "starttls"}[parts.scheme]
    if parts.query:
        params = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
        security = params.get("security", security)
    if not parts.hostname or not parts.username:
        raise ContactsError("an IMAP source looks like imaps://user@host[:port] (user may be user%40domain)")
    password = os.environ.get("SENDERGATE_IMAP_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise ContactsError("no IMAP password: set SENDERGATE_IMAP_PASSWORD or run in a terminal")
        password = getpass.getpass(f"IMAP password for {unquote(parts.username)}@{parts.hostname}: ")
    sent = None
    if parts.path and parts.path not in ("", "/"):
        sent = unquote(parts.path.lstrip("/"))
    return ImapHarvester(parts.hostname, parts.port, security=security, username=unquote(parts.username),
                         password=password, sent_folder=sent, own_addresses=user_addresses)


IMPORT_STEP = 5000  # entries per store transaction: the bar moves, and each step is committed when it ends


def _bar(total_hint: int | None, desc: str, unit: str = "msg", mininterval: float = 0.1) -> Any:
    from tqdm import tqdm
    return tqdm(total=total_hint, desc=desc, unit=unit, file=sys.stderr, disable=not sys.stderr.isatty(),
                leave=False, mininterval=mininterval)


def run_import(args: argparse.Namespace, store: Any) -> int:
    if args.global_:
        from .errors import UserError
        raise UserError("allow import needs --user: an address book belongs to one person")
    user = store.user_by_address(args.user)
    source = args.source
    state_key = None
    try:
        if source.startswith(("imap://", "imaps://")):
            harvester = _imap_source(source, user.addresses)
            state_key = f"imap_state:{user.id}:{harvester.account}"
            saved = store.get_setting(state_key)
            bar = _bar(None, f"reading {harvester.account}")

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

            try:
                result: ImportResult = harvester.harvest(json.loads(saved) if saved else None, progress=progress)
                interrupted = None
            except ContactsError as exc:
                if exc.partial is None:
                    raise
                result, interrupted = exc.partial, str(exc)
            finally:
                bar.close()
        else:
            result = read_file(source, own_addresses=user.addresses)
            interrupted = None
    except ContactsError as exc:
        from .errors import UserError
        raise UserError(str(exc)) from None

    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    have = {str(e.pattern) for e in store.entries(user.id, "allow")}
    new = [c for c in result.contacts if c.address not in have]
    print(f"{len(result.contacts)} addresses found, {len(new)} new, {len(result.contacts) - len(new)} already "
          f"allowed, {len(result.skipped)} skipped")
    reasons: dict[str, int] = {}
    for sk in result.skipped:
        reasons[sk.reason] = reasons.get(sk.reason, 0) + 1
    for reason, n in sorted(reasons.items()):
        print(f"  skipped ({reason}): {n}")
    if args.dry_run:
        for c in new:
            print(f"  would allow {c.address}" + (f"  ({c.name})" if c.name else ""))
        return 0
    note = f"imported from {os.path.basename(source) if '://' not in source else source}"
    added = 0
    bar = _bar(len(new), "allowing", unit="addr", mininterval=0)  # every committed step shows
    try:  # in steps, each its own transaction: an interrupted import keeps whole steps, and running it again is safe
        for start in range(0, len(new), IMPORT_STEP):
            step = [c.address for c in new[start:start + IMPORT_STEP]]
            added += store.import_entries(user.id, step, source="import", note=note)["added"]
            bar.update(len(step))
    finally:
        bar.close()
    harvested = result if isinstance(result, HarvestResult) else None  # an IMAP source
    hashes = harvested.sent_message_id_hashes if harvested is not None else []
    if hashes:
        store.add_sent_ids(user.id, hashes)
    if state_key is not None and harvested is not None:
        store.set_setting(state_key, json.dumps(harvested.state))
    print(f"allowed {added} new senders for {user.addresses[0]}"
          + (f"; {len(hashes)} sent Message-IDs recorded for reply recognition" if hashes else ""))
    if interrupted:
        print(f"sendergate: {interrupted}", file=sys.stderr)
        return 1
    return 0
