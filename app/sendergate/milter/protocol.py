"""The Sendmail milter protocol, version 6, as Postfix speaks it (the filter's side), on asyncio.

Small on purpose: a packet is a 4-byte big-endian length, one command byte and
its data; strings are NUL-terminated. `serve_connection` reads the MTA's
commands and hands each to a `Filter`'s coroutine; the filter's answer (an
`Action` list ending in one final reply) goes back as packets. No threads, no
C library: the gateway's handler is asyncio, and so is this.

Names follow libmilter's mfdef.h (SMFIC_* commands from the MTA, SMFIR_*
replies, SMFIF_* actions, SMFIP_* protocol flags) so the code reads against
the reference descriptions of the protocol.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger("sendergate.milter")

VERSION = 6

# Commands from the MTA.
SMFIC_ABORT, SMFIC_BODY, SMFIC_CONNECT, SMFIC_MACRO = b"A", b"B", b"C", b"D"
SMFIC_BODYEOB, SMFIC_HELO, SMFIC_QUIT_NC, SMFIC_HEADER = b"E", b"H", b"K", b"L"
SMFIC_MAIL, SMFIC_EOH, SMFIC_OPTNEG, SMFIC_QUIT = b"M", b"N", b"O", b"Q"
SMFIC_RCPT, SMFIC_DATA, SMFIC_UNKNOWN = b"R", b"T", b"U"

# Replies to the MTA.
SMFIR_ADDRCPT, SMFIR_DELRCPT, SMFIR_ACCEPT, SMFIR_REPLBODY = b"+", b"-", b"a", b"b"
SMFIR_CONTINUE, SMFIR_DISCARD, SMFIR_ADDHEADER, SMFIR_INSHEADER = b"c", b"d", b"h", b"i"
SMFIR_CHGHEADER, SMFIR_PROGRESS, SMFIR_REJECT, SMFIR_TEMPFAIL = b"m", b"p", b"r", b"t"
SMFIR_REPLYCODE = b"y"

# Actions the filter may take (negotiated).
SMFIF_ADDHDRS, SMFIF_CHGBODY, SMFIF_ADDRCPT, SMFIF_DELRCPT = 0x01, 0x02, 0x04, 0x08
SMFIF_CHGHDRS, SMFIF_QUARANTINE, SMFIF_CHGFROM = 0x10, 0x20, 0x40

# Protocol flags: events the filter does not want, replies it will not send.
SMFIP_NOCONNECT, SMFIP_NOHELO, SMFIP_NOMAIL, SMFIP_NORCPT = 0x01, 0x02, 0x04, 0x08
SMFIP_NOBODY, SMFIP_NOHDRS, SMFIP_NOEOH, SMFIP_NR_HDR = 0x10, 0x20, 0x40, 0x80
SMFIP_NOUNKNOWN, SMFIP_NODATA, SMFIP_SKIP, SMFIP_RCPT_REJ = 0x100, 0x200, 0x400, 0x800
SMFIP_NR_CONN, SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT = 0x1000, 0x2000, 0x4000, 0x8000
SMFIP_NR_DATA, SMFIP_NR_UNKN, SMFIP_NR_EOH, SMFIP_NR_BODY = 0x10000, 0x20000, 0x40000, 0x80000
SMFIP_HDR_LEADSPC = 0x100000

MAX_PACKET = 1 << 20  # libmilter's own limit on one packet is smaller; Postfix sends body chunks of 64 KiB


class ProtocolError(Exception):
    """The MTA sent something this side cannot follow: the connection is closed."""


# -- what a filter answers ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Action:
    code: bytes
    data: bytes = b""

    def packet(self) -> bytes:
        return struct.pack("!I", len(self.data) + 1) + self.code + self.data


CONTINUE = Action(SMFIR_CONTINUE)
ACCEPT = Action(SMFIR_ACCEPT)
TEMPFAIL = Action(SMFIR_TEMPFAIL)


def reply(smtp_reply: str) -> Action:
    """A 4xx/5xx reply, possibly multi-line ("550-5.7.1 …\\r\\n550 5.7.1 …"), as SMFIR_REPLYCODE.

    Postfix reads '%%' as '%' and drops a lone '%' (Sendmail used the text as a
    printf format), so every '%' is doubled; NUL cannot travel and is dropped.
    """
    if smtp_reply[:1] not in ("4", "5"):
        raise ValueError(f"a milter reply must be 4xx or 5xx, not {smtp_reply[:3]!r}")
    text = smtp_reply.replace("\x00", "").replace("%", "%%")
    return Action(SMFIR_REPLYCODE, text.encode("utf-8", "replace") + b"\0")


def _cstr(value: str | bytes) -> bytes:
    raw = value.encode("utf-8", "replace") if isinstance(value, str) else value
    return raw.replace(b"\0", b"") + b"\0"


def insert_header(index: int, name: str, value: str) -> Action:
    """SMFIR_INSHEADER: index 0 is the top of the header block."""
    return Action(SMFIR_INSHEADER, struct.pack("!I", index) + _cstr(name) + _cstr(value))


def add_header(name: str, value: str) -> Action:
    return Action(SMFIR_ADDHEADER, _cstr(name) + _cstr(value))


def delete_header(index: int, name: str | bytes) -> Action:
    """SMFIR_CHGHEADER with an empty value: remove the index-th (1-based) field of that name."""
    return Action(SMFIR_CHGHEADER, struct.pack("!I", index) + _cstr(name) + b"\0")


# -- what the MTA says -------------------------------------------------------------------------------

@dataclass
class Connection:
    """What the MTA told about the SMTP client, the current message's envelope and macros."""

    hostname: str = ""
    family: str = ""  # "4", "6", "L" (unix), "U" (unknown)
    port: int = 0
    address: str = ""
    helo: str = ""
    macros: dict[str, str] = field(default_factory=dict)  # all macros seen so far, by name without braces
    mta_actions: int = 0
    mta_protocol: int = 0
    protocol: int = 0  # the flags agreed on


def split_strings(data: bytes) -> list[str]:
    """NUL-separated strings (the last NUL optional), decoded leniently."""
    parts = data.split(b"\0")
    if parts and parts[-1] == b"":
        parts.pop()
    return [p.decode("utf-8", "surrogateescape") for p in parts]


def parse_macros(data: bytes) -> tuple[bytes, dict[str, str]]:
    """SMFIC_MACRO: the command the macros belong to, and name -> value (braces removed)."""
    if not data:
        raise ProtocolError("empty macro packet")
    strings = split_strings(data[1:])
    pairs = dict(zip(strings[0::2], strings[1::2], strict=False))  # a name without value: dropped
    return data[:1], {k[1:-1] if k.startswith("{") and k.endswith("}") else k: v for k, v in pairs.items()}


def parse_connect(data: bytes) -> tuple[str, str, int, str]:
    """SMFIC_CONNECT: (hostname, family, port, address)."""
    host, sep, rest = data.partition(b"\0")
    if not sep or not rest:
        raise ProtocolError("malformed connect packet")
    family = chr(rest[0])
    if family == "U" or len(rest) < 3:
        return host.decode("utf-8", "replace"), family, 0, ""
    port = struct.unpack("!H", rest[1:3])[0]
    address = rest[3:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return host.decode("utf-8", "replace"), family, port, address


def parse_header(data: bytes) -> tuple[bytes, bytes]:
    name, sep, value = data.partition(b"\0")
    if not sep:
        raise ProtocolError("malformed header packet")
    return name, value[:-1] if value.endswith(b"\0") else value


# -- the filter --------------------------------------------------------------------------------------

class Filter(Protocol):
    """One SMTP connection's filter. Each coroutine returns the actions to send, the last one final
    (CONTINUE, ACCEPT, TEMPFAIL or a reply); `header` and `body` chunks may return [] when the MTA
    agreed to expect no reply (SMFIP_NR_HDR / SMFIP_NR_BODY)."""

    actions: int  # SMFIF_* the filter needs
    protocol: int  # SMFIP_* flags it asks for (only those the MTA offers are used)

    async def connect(self, conn: Connection) -> list[Action]: ...
    async def helo(self, conn: Connection) -> list[Action]: ...
    async def mail(self, conn: Connection, args: list[str]) -> list[Action]: ...
    async def rcpt(self, conn: Connection, args: list[str]) -> list[Action]: ...
    async def header(self, conn: Connection, name: bytes, value: bytes) -> list[Action]: ...
    async def body(self, conn: Connection, chunk: bytes) -> list[Action]: ...
    async def end_of_message(self, conn: Connection) -> list[Action]: ...
    def abort(self, conn: Connection) -> None: ...
    def close(self, conn: Connection) -> None: ...


async def read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes] | None:
    """(command, data), or None at a clean end of input."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("connection closed inside a packet length") from None
        return None
    (length,) = struct.unpack("!I", head)
    if not 1 <= length <= MAX_PACKET:
        raise ProtocolError(f"packet length {length} out of range")
    try:
        payload = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise ProtocolError("connection closed inside a packet") from None
    return payload[:1], payload[1:]


async def serve_connection(flt: Filter, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Run one MTA connection to its end (QUIT, close, or a protocol error: logged, closed)."""
    conn = Connection()

    def send(actions: list[Action]) -> None:
        if actions:
            writer.write(b"".join(a.packet() for a in actions))

    try:
        while True:
            packet = await read_packet(reader)
            if packet is None:
                break
            cmd, data = packet
            if cmd == SMFIC_MACRO:
                conn.macros.update(parse_macros(data)[1])
                continue  # macros get no reply
            if cmd == SMFIC_OPTNEG:
                if len(data) < 12:
                    raise ProtocolError("short option negotiation")
                version, conn.mta_actions, conn.mta_protocol = struct.unpack("!III", data[:12])
                if version < 6:  # Postfix >= 2.6 (milter_protocol = 6) and Sendmail 8.14 speak 6
                    raise ProtocolError(f"MTA speaks milter protocol {version}; set milter_protocol = 6")
                conn.protocol = flt.protocol & conn.mta_protocol
                actions = flt.actions & conn.mta_actions
                send([Action(SMFIC_OPTNEG, struct.pack("!III", VERSION, actions, conn.protocol))])
            elif cmd == SMFIC_CONNECT:
                conn.hostname, conn.family, conn.port, conn.address = parse_connect(data)
                out = await flt.connect(conn)
                send([] if conn.protocol & SMFIP_NR_CONN else out)
            elif cmd == SMFIC_HELO:
                conn.helo = split_strings(data)[0] if data else ""
                out = await flt.helo(conn)
                send([] if conn.protocol & SMFIP_NR_HELO else out)
            elif cmd == SMFIC_MAIL:
                send(await flt.mail(conn, split_strings(data)))
            elif cmd == SMFIC_RCPT:
                send(await flt.rcpt(conn, split_strings(data)))
            elif cmd == SMFIC_HEADER:
                name, value = parse_header(data)
                out = await flt.header(conn, name, value)
                send([] if conn.protocol & SMFIP_NR_HDR else out or [CONTINUE])
            elif cmd == SMFIC_EOH:
                send([] if conn.protocol & SMFIP_NR_EOH else [CONTINUE])
            elif cmd == SMFIC_BODY:
                out = await flt.body(conn, data)
                send([] if conn.protocol & SMFIP_NR_BODY else out or [CONTINUE])
            elif cmd == SMFIC_BODYEOB:
                if data:  # a last chunk may travel with end-of-body
                    await flt.body(conn, data)
                send(await flt.end_of_message(conn))
            elif cmd == SMFIC_ABORT:
                flt.abort(conn)  # no reply
            elif cmd in (SMFIC_DATA, SMFIC_UNKNOWN):
                if not conn.protocol & (SMFIP_NR_DATA if cmd == SMFIC_DATA else SMFIP_NR_UNKN):
                    send([CONTINUE])
            elif cmd == SMFIC_QUIT_NC:  # the MTA reuses this connection for a new SMTP session
                flt.abort(conn)
                flt.close(conn)
                conn = Connection(mta_actions=conn.mta_actions, mta_protocol=conn.mta_protocol,
                                  protocol=conn.protocol)
            elif cmd == SMFIC_QUIT:
                break
            else:
                raise ProtocolError(f"unknown command {cmd!r}")
            await writer.drain()
    except ProtocolError as exc:
        log.warning("milter connection closed: %s", exc)
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        log.info("milter connection lost: %s", exc)
    finally:
        flt.close(conn)
        writer.close()
