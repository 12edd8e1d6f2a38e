"""Telling an approved sender they may write now (issue 16 item 5; `[notify]`, off by default).

This mail goes to a stranger, so it must never become backscatter. It is sent only when all hold:
- a person approved a *pending* challenge (API approve / allow-domain, a digest's Approve), never for a
  confirmation (the sender solved the CAPTCHA and already saw "send again") nor an import;
- the challenge's stored authentication (its `auth`, seen when the challenge was made) shows the sender's
  domain itself passed SPF or aligned DKIM: a forged envelope sender is never written to;
- the sender is a real person's address: not the null sender, not a machine role (no-reply@, bounces@,
  mailer-daemon@, postmaster@ …);
- this user has not told this sender before (the store's notified_senders, shared by all nodes).
It goes through the configured relay with a null envelope sender (RFC 3834: nothing bounces back).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from .config import Config
from .digest import authenticated_domain
from .policy.automated import is_role_local_part
from .store import Store, StoreError

log = logging.getLogger("sendergate.notify")

_NEVER_LOCAL = {"postmaster", "abuse", "hostmaster", "webmaster", "root", "mailer-daemon", "daemon", "nobody"}
_tasks: set[asyncio.Task[bool]] = set()  # strong references to notices under way


def refusal(challenge: dict[str, Any], prior_status: str) -> str | None:
    """Why this approval may not tell its sender (None: it may)."""
    if prior_status != "pending":
        return f"the challenge was {prior_status}, not pending"
    sender = str(challenge.get("sender") or "")
    if not sender or "@" not in sender:
        return "null sender"
    local = sender.rsplit("@", 1)[0].lower()
    if local.split("+", 1)[0] in _NEVER_LOCAL or is_role_local_part(local):
        return "a role or automated address"
    if authenticated_domain(sender, challenge.get("auth")) is None:
        return "the sender's domain was not authenticated when the challenge was made"
    return None


def build_notice(cfg: Config, recipient: str, sender: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = cfg.notify.sender or f"postmaster@{cfg.smtp.hostname}"
    msg["To"] = sender
    msg["Subject"] = f"You can write to {recipient} now"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = make_msgid(domain=cfg.smtp.hostname or "sendergate.invalid")
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    msg.set_content(cfg.notify.template.replace("{recipient}", recipient).replace("{sender}", sender))
    return msg.as_bytes()


def _send(cfg: Config, sender: str, message: bytes) -> None:
    hostport = cfg.notify.relay.removeprefix("smtp://")
    host, _, port = hostport.rpartition(":")
    with smtplib.SMTP(host.strip("[]"), int(port), local_hostname=cfg.smtp.hostname or None, timeout=30) as s:
        s.sendmail("", [sender], message)


async def after_approval(cfg: Config, store: Store, challenge: dict[str, Any], prior_status: str,
                         run: Any) -> bool:
    """Tell the sender, when every rule above allows it; True when a notice was handed to the relay.
    Failures are logged, never raised: the approval itself has already happened."""
    if not cfg.notify.enabled:
        return False
    why = refusal(challenge, prior_status)
    if why:
        log.info("notify: not telling %s (challenge %s): %s", challenge.get("sender"), challenge.get("id"), why)
        return False
    sender = str(challenge["sender"])
    try:
        if not await run(store.claim_notice, int(challenge["user_id"]), sender):
            log.info("notify: %s was told before; not again", sender)
            return False
        message = build_notice(cfg, str(challenge["recipient"]), sender)
        await asyncio.get_running_loop().run_in_executor(None, _send, cfg, sender, message)
    except (StoreError, OSError, smtplib.SMTPException) as exc:
        log.error("notify: telling %s failed: %s", sender, exc)
        return False
    log.info("notify: told %s they may write to %s", sender, challenge["recipient"])
    return True


def schedule(cfg: Config, store: Store, challenge: dict[str, Any], prior_status: str, run: Any) -> None:
    """after_approval in the background: the person's click does not wait for the relay."""
    if not cfg.notify.enabled:
        return
    task = asyncio.get_running_loop().create_task(after_approval(cfg, store, challenge, prior_status, run))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
