"""DKIM keys made for the tests and a loopback DNS server publishing them: what a sending domain
needs to sign mail the gateway verifies. The SPF and DMARC records each test module adds itself."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.dns_server import DNSTestServer


@dataclass(frozen=True)
class Key:
    selector: str
    domain: str
    private_pem: bytes
    public_b64: str


def make_key(domain: str, selector: str = "sel") -> Key:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(selector, domain, pem, base64.b64encode(der).decode("ascii"))


def sign(msg: bytes, key: Key) -> bytes:
    signature = dkim.sign(msg, key.selector.encode(), key.domain.encode(), key.private_pem,
                          include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return signature + msg


@dataclass
class Zones:
    server: DNSTestServer
    keys: dict[str, Key]


@contextmanager
def signing_zones(signers: Iterable[str]) -> Iterator[Zones]:
    """A running loopback DNS server with a DKIM key published for each signing domain."""
    keys = {d: make_key(d) for d in signers}
    with DNSTestServer() as server:
        for k in keys.values():
            server.add_txt(f"{k.selector}._domainkey.{k.domain}", f"v=DKIM1; k=rsa; p={k.public_b64}")
        yield Zones(server, keys)
