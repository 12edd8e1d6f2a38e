"""The MTA's side of the milter protocol, for tests and benchmarks: what Postfix's milter8 client sends.

    with MilterClient(("127.0.0.1", port)) as m:    # or a unix socket path
        m.negotiate()
        m.connect("client.test", "192.0.2.1")
        m.helo("client.test")
        m.mail("<bob@friend.example>")                     # -> [("c", b"")] or [("y", b"550 ...")]
        m.rcpt("<alice@example.org>")
        replies = m.message(b"Subject: hi\\r\\n\\r\\nbody\\r\\n")   # headers, body chunks, end of body

Replies are (code, data) pairs, the last one final. Independent of the
gateway's own protocol module on purpose: a test of one against the other
would otherwise share its mistakes.
"""

from __future__ import annotations

import socket
import struct
from types import TracebackType

# What Postfix 3.7 offers with milter_protocol = 6 (milter8.c: all actions, all protocol events).
MTA_ACTIONS = 0x1FF
MTA_PROTOCOL = 0x1FFFFF
FINAL = set("acrtyd")  # continue, accept, reject, tempfail, replycode, discard


class MilterClient:
    def __init__(self, address: str | tuple[str, int], timeout: float = 30.0) -> None:
        family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if family == socket.AF_INET:  # the MTA writes whole packets; Nagle would hold small ones back
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.connect(address)
        self.protocol = 0
        self.actions = 0
        self._buf = b""

    def __enter__(self) -> MilterClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.send("Q")
        except OSError:
            pass
        self.sock.close()

    # -- packets ------------------------------------------------------------------------------------------
    def send(self, code: str, data: bytes = b"") -> None:
        self.sock.sendall(struct.pack("!I", len(data) + 1) + code.encode() + data)

    def read(self) -> tuple[str, bytes]:
        head = self._exactly(4)
        (length,) = struct.unpack("!I", head)
        payload = self._exactly(length)
        return chr(payload[0]), payload[1:]

    def _exactly(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("milter closed the connection")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def replies(self) -> list[tuple[str, bytes]]:
        """Read up to and including the final reply (edits such as 'h', 'i', 'm' come before it)."""
        out = []
        while True:
            code, data = self.read()
            out.append((code, data))
            if code in FINAL:
                return out

    # -- the conversation ---------------------------------------------------------------------------------
    def negotiate(self, actions: int = MTA_ACTIONS, protocol: int = MTA_PROTOCOL) -> tuple[int, int, int]:
        self.send("O", struct.pack("!III", 6, actions, protocol))
        code, data = self.read()
        assert code == "O", (code, data)
        version, self.actions, self.protocol = struct.unpack("!III", data[:12])
        return version, self.actions, self.protocol

    def macros(self, stage: str, **values: str) -> None:
        data = stage.encode() + b"".join(
            (f"{{{k}}}" if len(k) > 1 else k).encode() + b"\0" + v.encode() + b"\0" for k, v in values.items())
        self.send("D", data)

    def _maybe_reply(self, no_reply_flag: int) -> list[tuple[str, bytes]]:
        return [] if self.protocol & no_reply_flag else self.replies()

    def connect(self, hostname: str, address: str, port: int = 40000) -> list[tuple[str, bytes]]:
        family = b"6" if ":" in address else b"4"
        self.send("C", hostname.encode() + b"\0" + family + struct.pack("!H", port) + address.encode() + b"\0")
        return self._maybe_reply(0x1000)  # SMFIP_NR_CONN

    def helo(self, name: str) -> list[tuple[str, bytes]]:
        self.send("H", name.encode() + b"\0")
        return self._maybe_reply(0x2000)  # SMFIP_NR_HELO

    def mail(self, sender: str, *args: str, **macros: str) -> list[tuple[str, bytes]]:
        self.macros("M", **{"i": "4ABCDEF", **macros})
        self.send("M", b"".join(a.encode() + b"\0" for a in (sender, *args)))
        return self._maybe_reply(0x4000)  # SMFIP_NR_MAIL

    def rcpt(self, recipient: str, *args: str) -> list[tuple[str, bytes]]:
        self.send("R", b"".join(a.encode() + b"\0" for a in (recipient, *args)))
        return self._maybe_reply(0x8000)  # SMFIP_NR_RCPT

    def message(self, message: bytes, chunk: int = 65535) -> list[tuple[str, bytes]]:
        """Headers one by one, the end of headers, the body in chunks, end of body: the final replies."""
        head, _, body = message.partition(b"\r\n\r\n")
        fields: list[bytes] = []
        for line in head.split(b"\r\n"):
            if line[:1] in (b" ", b"\t") and fields:
                fields[-1] += b"\n" + line  # Postfix passes folded lines joined by a bare LF
            else:
                fields.append(line)
        if not self.protocol & 0x200:  # SMFIP_NODATA
            self.send("T")
            self._maybe_reply(0x10000)
        for f in fields:
            name, _, value = f.partition(b":")
            if not self.protocol & 0x100000:  # without SMFIP_HDR_LEADSPC the MTA drops one leading space
                value = value[1:] if value.startswith(b" ") else value
            self.send("L", name + b"\0" + value + b"\0")
            self._maybe_reply(0x80)  # SMFIP_NR_HDR
        if not self.protocol & 0x40:  # SMFIP_NOEOH
            self.send("N")
            self._maybe_reply(0x40000)
        for i in range(0, len(body), chunk):
            self.send("B", body[i:i + chunk])
            self._maybe_reply(0x80000)  # SMFIP_NR_BODY
        self.send("E")
        return self.replies()

    def abort(self) -> None:
        self.send("A")
