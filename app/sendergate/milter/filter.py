"""The gateway's policy as a milter: the SMTP handler's own hooks, driven by what Postfix reports.

Nothing of the policy is copied here. Each milter event becomes the call the
SMTP proxy would make (`handle_MAIL`, `handle_RCPT`, `handle_DATA` of
`GatewayHandler`) on a session and envelope built from the milter's connect
data and macros; the handler's reply becomes the milter's reply. The one
difference is delivery: Postfix queues and delivers, so `MilterHandler`
overrides the handler's hand-over and only notes which headers to add; the
end-of-message reply then carries them as header actions.

One message, one reply. The proxy also answers end of DATA once for all
recipients (`settle_recipients` makes that one answer true for each), but it
can hand the inbox copies and the screened copies on separately, each with its
own headers. A milter edits the one copy Postfix queues for every recipient:
when some recipients get the message screened and others in the inbox, the
copy carries the screening mark for all (the safe direction: a known sender's
message filed as screened, never a screened one in an inbox unmarked).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import Envelope

from ..delivery import Delivered
from ..policy import replies
from ..policy.headers import SCREENED_MARK, gateway_owned
from ..smtp.handler import GatewayHandler, Transaction
from . import protocol as p

if TYPE_CHECKING:
    from ..policy.decide import AuthResults
    from ..runtime import Runtime

log = logging.getLogger("sendergate.milter")

TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
HANDED_ON = "handed to the MTA (milter)"


class MilterSession:
    """What the handler reads of an SMTP session, from the milter's connect data and macros."""

    def __init__(self) -> None:
        self.peer: tuple[str, int] | str = ("", 0)
        self.host_name = ""
        self.ssl = None
        self.refused_rcpt_events = 0


class MilterHandler(GatewayHandler):
    """GatewayHandler whose accepted mail is handed back to the MTA rather than delivered."""

    async def _hand_on(self, session: Any, envelope: Any, tx: Transaction, message: bytes, group: list[int],
                       auth: AuthResults | None, *, screened: bool) -> Delivered:
        envelope.hand_ons.append((screened, auth))
        return Delivered(HANDED_ON)


class SenderGateFilter:
    """One MTA connection: the handler's hooks per milter event (protocol.Filter)."""

    actions = p.SMFIF_ADDHDRS | p.SMFIF_CHGHDRS
    # No events it does not use; no replies the MTA need wait for to headers and body chunks;
    # header values exactly as sent (with their leading space).
    protocol = (p.SMFIP_NOUNKNOWN | p.SMFIP_NODATA | p.SMFIP_NOEOH | p.SMFIP_NR_HDR | p.SMFIP_NR_BODY
                | p.SMFIP_NR_CONN | p.SMFIP_NR_HELO | p.SMFIP_HDR_LEADSPC)

    def __init__(self, handler: MilterHandler, rt: Runtime, *, worker: int = 0) -> None:
        self.handler = handler
        self.rt = rt
        self.worker = worker  # the milter worker process this connection is in (its log line says)
        self.hostname = rt.cfg.smtp.hostname
        self.max_size = rt.cfg.smtp.max_message_size
        self.session = MilterSession()
        self._reset()

    @property
    def busy(self) -> bool:
        """In a transaction (between MAIL and the end of the message): not to be cut off at shutdown."""
        return self.envelope is not None

    def _reset(self) -> None:
        self.envelope: Any = None  # set at MAIL; None: nothing to decide (no MAIL yet, or accepted unread)
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.too_big = False

    # -- connection ------------------------------------------------------------------------------------
    async def connect(self, conn: p.Connection) -> list[p.Action]:
        address = conn.address or conn.macros.get("client_addr", "")
        if address.lower().startswith("ipv6:"):  # Sendmail's form of an IPv6 address
            address = address[5:]
        self.session.peer = (address, conn.port) if conn.family in ("4", "6") else (address or "unknown", 0)
        return [p.CONTINUE]

    async def helo(self, conn: p.Connection) -> list[p.Action]:
        self.session.host_name = conn.helo
        return [p.CONTINUE]

    # -- envelope ----------------------------------------------------------------------------------------
    async def mail(self, conn: p.Connection, args: list[str]) -> list[p.Action]:
        self._reset()
        if not self.session.host_name:
            self.session.host_name = conn.helo or conn.macros.get("s", "")
        if conn.macros.get("auth_authen"):
            # A client that logged in (SMTP AUTH) submits mail: not an incoming stranger's. The MTA's
            # own rules decided it may send; the rest of this message is not looked at.
            log.info("milter: %s authenticated as %r: message accepted unscreened",
                     self.session.peer[0] if isinstance(self.session.peer, tuple) else self.session.peer,
                     conn.macros["auth_authen"][:100])
            return [p.ACCEPT]
        self.envelope = Envelope()
        self.envelope.hand_ons = []
        reply = await self.handler.handle_MAIL(None, self.session, self.envelope, _address(args),
                                               args[1:] if args else [])
        if not reply.startswith("2"):
            self.envelope = None
        return [_action(reply)]

    async def rcpt(self, conn: p.Connection, args: list[str]) -> list[p.Action]:
        if self.envelope is None:
            return [p.TEMPFAIL]  # RCPT without a MAIL this filter accepted: cannot happen with Postfix
        reply = await self.handler.handle_RCPT(None, self.session, self.envelope, _address(args), args[1:])
        return [_action(reply)]

    # -- content -------------------------------------------------------------------------------------------
    async def header(self, conn: p.Connection, name: bytes, value: bytes) -> list[p.Action]:
        if not conn.protocol & p.SMFIP_HDR_LEADSPC:  # an MTA that cannot keep it drops one space after ':'
            value = b" " + value
        self._count(len(name) + len(value) + 3)
        if not self.too_big:
            self.headers.append((name, value))
        return []

    async def body(self, conn: p.Connection, chunk: bytes) -> list[p.Action]:
        self._count(len(chunk))
        if not self.too_big:
            self.chunks.append(chunk)
        return []

    def _count(self, n: int) -> None:
        self.size += n
        if self.size > self.max_size and not self.too_big:  # memory stays bounded (SPEC §4.5 item 5)
            self.too_big = True
            self.headers, self.chunks = [], []

    async def end_of_message(self, conn: p.Connection) -> list[p.Action]:
        envelope, headers = self.envelope, self.headers
        try:
            if envelope is None or not envelope.rcpt_tos:
                return [p.CONTINUE]
            if self.too_big:
                return [p.reply(TOO_BIG)]
            envelope.original_content = _message(headers, b"".join(self.chunks))
            result = await self.handler.handle_DATA(None, self.session, envelope)
            # Postfix's queue id ties its log ("milter-reject: END-OF-MESSAGE", "queued as") to ours
            log.info("milter queue_id=%s sender=%s reply=%s worker=%d", replies.safe(conn.macros.get("i", ""), 40),
                     replies.safe(envelope.mail_from or "<>", 200), replies.safe(result.split("\r\n")[0], 120),
                     self.worker)
            if not result.startswith("2"):
                return [_action(result)]
            lead = bool(conn.protocol & p.SMFIP_HDR_LEADSPC)
            return [*self._edits(headers, envelope.hand_ons, lead), p.CONTINUE]
        finally:
            self._reset()

    def _edits(self, headers: list[tuple[bytes, bytes]], hand_ons: list[tuple[bool, Any]],
               lead: bool) -> list[p.Action]:
        """Remove the fields only the gateway may write (SPEC §4.5 item 4), then put ours on top."""
        owned = gateway_owned(self.hostname)
        seen: dict[bytes, int] = {}
        doomed: list[tuple[int, bytes]] = []
        for name, value in headers:
            key = name.strip().lower()
            seen[key] = seen.get(key, 0) + 1
            if owned(key.decode("latin-1"), name + b":" + value):
                doomed.append((seen[key], name))
        # Highest index first: each deletion leaves the lower indexes of that name where they were.
        edits = [p.delete_header(index, name) for index, name in reversed(doomed)]
        auth = next((a for _, a in hand_ons if a is not None), None)
        if auth is not None:
            from ..senderauth import authentication_results_header
            field = authentication_results_header(self.hostname, auth, linesep="\n")
            edits.append(_insert_top(field, lead))
        if any(screened for screened, _ in hand_ons):
            edits.append(_insert_top(SCREENED_MARK, lead))
        return edits

    def abort(self, conn: p.Connection) -> None:
        self._reset()

    def close(self, conn: p.Connection) -> None:
        self._reset()


def _insert_top(field: str, lead: bool) -> p.Action:
    """The field at the top of the header block (as the proxy puts its own). With SMFIP_HDR_LEADSPC
    the value carries its leading space; without, the MTA puts one in."""
    name, _, value = field.partition(":")
    return p.insert_header(0, name, value if lead else value.removeprefix(" "))


def _address(args: list[str]) -> str:
    """MAIL/RCPT's first argument without its angle brackets, as aiosmtpd hands it to the handler."""
    raw = args[0].strip() if args else ""
    if raw.startswith("<") and raw.endswith(">"):
        raw = raw[1:-1]
    return raw or "<>"


def _message(headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
    """The message as the client sent it (what the proxy would have read), CRLF line ends: a folded
    field's line breaks come as LF or CRLF depending on the MTA. Every byte counts for a DKIM
    signature with simple canonicalization (tests/test_milter.py sends one through Postfix)."""
    lines = []
    for name, value in headers:
        lines.append(name + b":" + value.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n")
    return b"".join(lines) + b"\r\n" + body


def _action(smtp_reply: str) -> p.Action:
    """The handler's SMTP reply as the milter's answer: 2xx goes on, the rest is the reply itself."""
    return p.CONTINUE if smtp_reply.startswith("2") else p.reply(smtp_reply)
