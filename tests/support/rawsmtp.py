"""A raw SMTP client for tests: exact bytes out, replies in (each reply's lines joined by \\n), for the
malformed input, pipelining and half-closes that smtplib will not send."""

from __future__ import annotations

import socket


class RawSMTP:
    def __init__(self, port: int, source: str | None = None, timeout: float = 30) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.banner = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError(f"closed after {lines!r} {self.buf!r}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def cmd(self, line: bytes | str) -> str:
        self.send((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return self.reply()

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        data = self.buf
        while chunk := self.sock.recv(65536):
            data += chunk
        self.buf = b""
        return data

    def transaction(self, sender: str, rcpt: str) -> None:
        """EHLO, MAIL, RCPT and DATA, each accepted; the caller sends the content."""
        assert self.cmd("EHLO client.test").startswith("250")
        assert self.cmd(f"MAIL FROM:<{sender}>").startswith("250")
        assert self.cmd(f"RCPT TO:<{rcpt}>").startswith("250")
        assert self.cmd("DATA").startswith("354")

    def close(self) -> None:
        self.sock.close()
