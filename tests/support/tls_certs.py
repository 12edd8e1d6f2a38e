"""A throw-away certificate authority for tests: a CA, server and client certificates signed by it,
written as PEM files (the `cryptography` package; nothing leaves the machine).

    ca = TestCA(directory)                                   # CA key + certificate, ca.cert_file
    server = ca.issue("server", dns=("localhost",))          # CertFiles(cert_file, key_file, ...)
    expired = ca.issue("old", dns=("localhost",), expired=True)
    client = ca.issue("gateway", client=True)                # clientAuth, for a connector
    other = TestCA(directory, name="Other CA")               # a CA nobody trusts

Keys are EC P-256 (fast to make); certificates are valid from an hour ago for a day unless
expired=True (then they ended an hour ago).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    name: str
    cert_file: Path  # the leaf certificate (PEM)
    key_file: Path  # its private key (PEM, unencrypted)
    chain_file: Path  # key, then certificate: what Postfix's tls_server_sni_maps and *_chain_files take
    sha256: str  # fingerprint as Postfix prints it (AA:BB:…)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "SenderGate Test CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        slug = "".join(c if c.isalnum() else "-" for c in name.lower())
        self.cert_file = self.directory / f"{slug}.crt"
        self.cert_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, *, dns: tuple[str, ...] = (), ips: tuple[str, ...] = (),
              client: bool = False, expired: bool = False) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            start, end = now - datetime.timedelta(days=2), now - datetime.timedelta(hours=1)
        else:
            start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=1)
        common = dns[0] if dns else name
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client
                                                  else ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
        )
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        cert_file, key_file = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        chain_file = self.directory / f"{name}.chain.pem"
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(_key_pem(key))
        key_file.chmod(0o600)
        chain_file.write_bytes(_key_pem(key) + cert_pem)
        chain_file.chmod(0o600)
        fingerprint = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
        return CertFiles(name, cert_file, key_file, chain_file, fingerprint)
