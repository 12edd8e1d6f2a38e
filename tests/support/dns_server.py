"""A small authoritative DNS server on loopback for tests, built on dnspython.

It answers UDP and TCP on one port, from records the test puts in memory:

    with DNSTestServer() as server:
        server.add_txt("example.test", "v=spf1 ip4:192.0.2.1 -all")
        server.add("mx.example.test", "A", "192.0.2.1")
        server.drop("slow.example.test")   # never answer: the client times out
        ... DNSConfig(nameservers=[server.address]) ...

Names it holds no records for get NXDOMAIN, known names asked for another
type get an empty NOERROR; both carry an SOA so resolvers may cache the
negative answer. UDP answers that do not fit the client's buffer (512 bytes,
or its EDNS size) come back truncated, so the client retries over TCP, as with
a real server. Every question is logged in `queries` as (name, type, transport).
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections import defaultdict

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

SOA_TEXT = "ns.dns.test. hostmaster.dns.test. 1 3600 600 86400 60"


def _name(name: str) -> dns.name.Name:
    return dns.name.from_text(name.rstrip(".") + ".")


class DNSTestServer:
    """Authoritative for every name it is given; one instance per test module is plenty."""

    def __init__(self, host: str = "127.0.0.1", ttl: int = 300) -> None:
        self.host = host
        self.ttl = ttl
        self._records: dict[dns.name.Name, dict[int, list[dns.rdata.Rdata]]] = defaultdict(dict)
        self._dropped: set[dns.name.Name] = set()
        self._servfail: set[dns.name.Name] = set()
        self._lock = threading.Lock()
        self.queries: list[tuple[str, str, str]] = []
        self.port = 0
        self._servers: list[socketserver.BaseServer] = []
        self._threads: list[threading.Thread] = []

    # -- zone data ---------------------------------------------------------

    def add(self, name: str, rdtype: str, *values: str) -> None:
        """Records in zone-file text form: add("x.test", "MX", "10 mx.x.test.")."""
        rdt = dns.rdatatype.from_text(rdtype)
        with self._lock:
            bucket = self._records[_name(name)].setdefault(rdt, [])
            for value in values:
                bucket.append(dns.rdata.from_text(dns.rdataclass.IN, rdt, value))

    def add_txt(self, name: str, text: str) -> None:
        """One TXT record, split into 255-octet character-strings as publishing tools do."""
        data = text.encode("utf-8")
        chunks = [data[i:i + 255] for i in range(0, len(data), 255)] or [b""]
        rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT,
                                    " ".join('"' + c.decode("utf-8").replace("\\", "\\\\")
                                             .replace('"', '\\"') + '"' for c in chunks))
        with self._lock:
            self._records[_name(name)].setdefault(dns.rdatatype.TXT, []).append(rdata)

    def remove(self, name: str) -> None:
        with self._lock:
            self._records.pop(_name(name), None)

    def drop(self, name: str) -> None:
        """Never answer questions about this name (any type): the client must time out."""
        with self._lock:
            self._dropped.add(_name(name))

    def servfail(self, name: str) -> None:
        """Answer SERVFAIL for this name, as a broken upstream would."""
        with self._lock:
            self._servfail.add(_name(name))

    def asked(self, name: str) -> list[tuple[str, str, str]]:
        key = _name(name).to_text().lower()
        with self._lock:
            return [q for q in self.queries if q[0] == key]

    # -- serving -----------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def answer(self, wire: bytes, transport: str) -> bytes | None:
        """The response to one query, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        qname, qtype = question.name, question.rdtype
        with self._lock:
            self.queries.append((qname.to_text().lower(), dns.rdatatype.to_text(qtype), transport))
            if qname in self._dropped:
                return None
            failing = qname in self._servfail
            records = self._records.get(qname)
            rdatas = list(records.get(qtype, [])) if records else []
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if failing:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif rdatas:
            response.answer.append(dns.rrset.from_rdata_list(qname, self.ttl, rdatas))
        else:
            if records is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(dns.rrset.from_text_list("dns.test.", 60, "IN", "SOA", [SOA_TEXT]))
        if transport == "tcp":
            return response.to_wire(max_size=65535)
        limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.AA | dns.flags.TC
            return truncated.to_wire()

    def start(self) -> DNSTestServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        outer = self

        class UDPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = outer.answer(data, "udp")
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class TCPHandler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                while True:
                    head = _recv_exact(conn, 2)
                    if head is None:
                        return
                    data = _recv_exact(conn, int.from_bytes(head, "big"))
                    if data is None:
                        return
                    reply = outer.answer(data, "tcp")
                    if reply is None:
                        continue  # a dropped name: say nothing, keep the connection
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)

        class UDPServer(socketserver.ThreadingUDPServer):
            address_family = family
            daemon_threads = True
            block_on_close = False  # a client waiting on a dropped name must not hold up stop()

        class TCPServer(socketserver.ThreadingTCPServer):
            address_family = family
            daemon_threads = True
            block_on_close = False  # a client waiting on a dropped name must not hold up stop()
            allow_reuse_address = True

        # UDP and TCP on the same port number: take a free UDP port, then try TCP on it.
        for _attempt in range(20):
            udp = UDPServer((self.host, 0), UDPHandler)
            port = udp.server_address[1]
            try:
                tcp = TCPServer((self.host, port), TCPHandler)
            except OSError:
                udp.server_close()
                continue
            break
        else:
            raise RuntimeError(f"no port on {self.host} free for both UDP and TCP")
        self.port = port
        self._servers = [udp, tcp]
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                      name=f"dns-test-{port}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> DNSTestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _recv_exact(conn: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data
