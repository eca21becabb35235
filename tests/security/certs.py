"""Test certificates made at test time (never committed): a CA and leaf certificates."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "Svod test CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, dns: tuple[str, ...] = ("localhost",)) -> tuple[bytes, bytes]:
        """(key PEM, certificate PEM) for a server and client: DNS names, 127.0.0.1 and ::1."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in (common_name, *dns)]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: Path, common_name: str) -> tuple[Path, Path, Path]:
        """Writes ca.pem, <name>.key and <name>.pem; returns (cert, key, ca) paths."""
        directory.mkdir(parents=True, exist_ok=True)
        key, cert = self.issue(common_name)
        ca_path = directory / "ca.pem"
        ca_path.write_bytes(self.pem)
        key_path = directory / f"{common_name}.key"
        key_path.write_bytes(key)
        cert_path = directory / f"{common_name}.pem"
        cert_path.write_bytes(cert)
        return cert_path, key_path, ca_path


def replace_file(path: Path, content: bytes) -> None:
    """Writes like cert-manager's Secret volume does: a new file moved over the old one."""
    fresh = path.with_suffix(path.suffix + ".new")
    fresh.write_bytes(content)
    fresh.replace(path)
