"""``splitnet certs``: a cluster CA and one key and certificate per client (``cryptography``).

Files in the output folder: ``ca.crt`` and ``ca.key`` (keep the CA key off the clients),
``clientK.crt`` and ``clientK.key`` for each client. Keys are EC P-256, written 0600 and never
overwritten. A client's certificate names ``clientK`` (common name and DNS name; the compose
service is called the same), ``*`` (so it serves every SSL torrent of the cluster; Note: SSL
torrents, in transport/torrent.py) and any ``--host`` (a DNS name or an IP address). ``--add K``
makes client K's files with an existing CA (a client added to a cluster, or a replaced key).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from splitnet.errors import ConfigError, Violation
from splitnet.transport.tls import ANY_TORRENT, client_name

__all__ = ["DEFAULT_DAYS", "MAX_DAYS", "check_certs_options", "make_certs"]

DEFAULT_DAYS = 365
MAX_DAYS = 36_500  # 100 years; a certificate cannot end after 9999 (x509's GeneralizedTime)
MAX_CLIENT = 1024  # NUM_CLIENTS' limit
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_DNS_NAME = re.compile(rf"(\*\.)?{_LABEL}(\.{_LABEL})*\.?")
COMMAND_LINE = "the command line"
_SKEW = dt.timedelta(minutes=5)  # clocks of the cluster's hosts differ a little


def _host_problem(host: str) -> str | None:
    """Say why ``--host`` cannot go into a certificate (an IP address or an ASCII DNS name)."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if len(host) <= 253 and _DNS_NAME.fullmatch(host):
        return None
    return (f"--host {host!r}: expected a DNS name (ASCII letters, digits, '-', '_', dots "
            "between labels) or an IP address, e.g. node1.example or 10.0.0.9")


def check_certs_options(clients: int | None, add: Sequence[int], days: int,
                        hosts: Sequence[str]) -> None:
    """Refuse every flag of ``splitnet certs`` out of its range at once, naming the flag."""
    problems = []
    if clients is not None and not 1 <= clients <= MAX_CLIENT:
        problems.append(f"--clients {clients}: expected 1 to {MAX_CLIENT}")
    problems += [f"--add {k}: expected a client number from 1 to {MAX_CLIENT}"
                 for k in add if not 1 <= k <= MAX_CLIENT]
    if not 1 <= days <= MAX_DAYS:
        problems.append(f"--days {days}: expected 1 to {MAX_DAYS} (100 years)")
    problems += [why for host in hosts if (why := _host_problem(host))]
    if problems:
        raise ConfigError([Violation("usage", p) for p in problems], COMMAND_LINE)


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "splitnet cluster"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    alt: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    return alt


def _ca(days: int, now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("splitnet cluster CA")
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _client(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, k: int,
            hosts: Sequence[str], days: int,
            now: dt.datetime) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = client_name(k)
    end = min(now + dt.timedelta(days=days), ca.not_valid_after_utc)
    cert = (x509.CertificateBuilder().subject_name(_name(name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(
                _alt_names([name, ANY_TORRENT, *hosts])),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    """Write a new file (never over an old one); a key is readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_certs(folder: Path, clients: Iterable[int], *, hosts: Sequence[str] = (),
               days: int = DEFAULT_DAYS, add: bool = False,
               now: dt.datetime | None = None) -> list[Path]:
    """Write a CA (or, with ``add``, use the one in ``folder``) and each client's files.

    Return the paths written. ConfigError (naming the file) when one exists already, or
    when ``add`` finds no CA.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    numbers = sorted(set(clients))
    if not numbers:
        raise ConfigError(Violation("usage", "certs: expected at least one client number"),
                          COMMAND_LINE)
    check_certs_options(None, numbers, days, hosts)
    ca_cert_path, ca_key_path = folder / "ca.crt", folder / "ca.key"
    targets = [folder / f"{client_name(k)}{suffix}" for k in numbers for suffix in (".crt",
                                                                                       ".key")]
    existing = [p for p in (targets if add else [ca_cert_path, ca_key_path, *targets])
                if p.exists()]
    if existing:
        raise ConfigError(Violation("usage", f"certs: {existing[0]} exists; certificates and "
                                             "keys are never overwritten (remove it first)"),
                          COMMAND_LINE)
    written: list[Path] = []
    folder.mkdir(parents=True, exist_ok=True)
    if add:
        try:
            ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
            ca = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(Violation("usage", f"certs --add: no usable CA in {folder} "
                                                 f"(ca.crt and ca.key): {exc}"),
                              COMMAND_LINE) from None
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise ConfigError(Violation("usage", f"certs --add: {ca_key_path} is not an EC "
                                                 "key made by splitnet certs"), COMMAND_LINE)
    else:
        ca_key, ca = _ca(days, now)
        _write(ca_key_path, _key_pem(ca_key), secret=True)
        _write(ca_cert_path, _cert_pem(ca), secret=False)
        written += [ca_cert_path, ca_key_path]
    for k in numbers:
        key, cert = _client(ca_key, ca, k, hosts, days, now)
        name = client_name(k)
        _write(folder / f"{name}.key", _key_pem(key), secret=True)
        _write(folder / f"{name}.crt", _cert_pem(cert), secret=False)
        written += [folder / f"{name}.crt", folder / f"{name}.key"]
    return written
