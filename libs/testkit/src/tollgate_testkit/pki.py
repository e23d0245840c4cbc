"""Throwaway X.509 certificates for tests: a CA and the certificates it signs (ECDSA P-256,
valid for a week), for the API server of kube.py and redis-server over TLS."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
    return k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
    hosts: tuple[str, ...] = ("localhost", "127.0.0.1"),
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        b = b.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    elif server:
        b = b.add_extension(
            x509.SubjectAlternativeName([_san(h) for h in hosts]),
            critical=False,
        )
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
    else:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    return b.sign(issuer_key, hashes.SHA256())


def dn(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


@dataclass(frozen=True)
class ServerPki:
    """A CA (its certificate only: trust it with SSL_CERT_FILE) and a server key pair it signed."""

    ca: Path
    cert: Path
    key: Path


def make_server_pki(d: Path, hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> ServerPki:
    """A fresh CA, and a server certificate from it for ``hosts``, as PEM files in ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    ca_key, srv_key = new_key(), new_key()
    ca_name = dn(f"tollgate-test-ca-{d.name}")
    ca = cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    srv = cert(dn(hosts[0]), srv_key, ca_name, ca_key, server=True, hosts=hosts)
    out = ServerPki(d / "ca.crt", d / "server.crt", d / "server.key")
    out.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out.cert.write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    out.key.write_bytes(pem_key(srv_key))
    return out
