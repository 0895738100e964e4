"""Mutual TLS identities: the cluster CA, this client's certificate and key, checked at start.

Every client holds the cluster CA's certificate (``ca.crt``) and its own key and certificate
(``client{K}.key``, ``client{K}.crt``, made by ``splitnet certs``). A certificate names its
client in its subject's common name and in a DNS subject alternative name (``clientK``); a
peer's client number is read from the certificate it presented, never from what it claims.
A connection to peer k checks that the peer presents ``clientk``'s certificate (the name is
verified instead of the address, so it holds on any network). It also carries the DNS name
``*`` (:data:`ANY_TORRENT`): libtorrent accepts a peer on an SSL torrent only if a name of its
certificate is the torrent's or ``*`` (the CA embedded in the torrent limits it to members).

:func:`load_identity` refuses, naming the file and the rule: a file that is missing or not
PEM, a certificate not issued by the CA, one not yet valid or expired (with its dates), one for
another client, and a key that does not match the certificate.
"""

from __future__ import annotations

import datetime as dt
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from splitnet.config.files import read_regular_bytes

__all__ = ["ANY_TORRENT", "MAX_PEM_BYTES", "Identity", "TlsFiles", "client_name", "client_number",
           "load_identity", "names_of", "tls_wanted"]

MAX_PEM_BYTES = 256 * 1024
ANY_TORRENT = "*"  # the DNS name with which a certificate serves every SSL torrent
_NAME = re.compile(r"client([1-9][0-9]{0,5})")


def client_name(k: int) -> str:
    """Return the name client ``k``'s certificate carries (CN and DNS SAN): ``clientK``."""
    return f"client{k}"


def client_number(name: str | bytes | None) -> int | None:
    """Return K for a certificate name ``clientK``, None for anything else."""
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    match = _NAME.fullmatch(name or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class TlsFiles:
    """Where client ``me``'s TLS material lies: the CA certificate, its certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def in_folder(cls, folder: Path, me: int) -> TlsFiles:
        """Return the files ``splitnet certs`` writes for client ``me`` in ``folder``."""
        name = client_name(me)
        return cls(folder / "ca.crt", folder / f"{name}.crt", folder / f"{name}.key")


@dataclass(frozen=True)
class Identity:
    """Client ``me``'s checked TLS material, as PEM bytes, and the contexts made from it."""

    me: int
    files: TlsFiles
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    not_after: dt.datetime
    covers_torrents: bool = True  # its DNS names hold "*" (Note: SSL torrents, in torrent.py)

    def server_context(self) -> ssl.SSLContext:
        """Return a TLS 1.3 server context that requires a client certificate from the CA."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=self.ca_pem.decode())
        context.load_cert_chain(self.files.cert, self.files.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Return a TLS 1.3 client context presenting this client's certificate.

        Connect with ``server_hostname=client_name(k)``: the peer must be client k.
        """
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        context.load_verify_locations(cadata=self.ca_pem.decode())
        context.load_cert_chain(self.files.cert, self.files.key)
        return context


def tls_wanted(mode: str, folder: Path) -> bool | None:
    """Return whether ``TLS=mode`` means TLS: on, off, or (auto) whether ``folder`` has a CA.

    None: ``auto`` and no ``ca.crt`` in ``folder``; TLS=off must be asked for explicitly.
    """
    if mode in ("on", "off"):
        return mode == "on"
    return True if (folder / "ca.crt").exists() else None


def _read(path: Path, what: str) -> bytes:
    try:
        data, size = read_regular_bytes(path, MAX_PEM_BYTES)
    except ValueError as exc:
        raise ValueError(f"{what} {path}: {exc}") from None
    if size > MAX_PEM_BYTES:
        raise ValueError(f"{what} {path}: {size} bytes; the limit is {MAX_PEM_BYTES}")
    return data


def _certificate(path: Path, what: str) -> tuple[bytes, x509.Certificate]:
    data = _read(path, what)
    try:
        return data, x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise ValueError(f"{what} {path}: not a PEM certificate ({exc})") from None


def _check_dates(path: Path, cert: x509.Certificate, now: dt.datetime) -> None:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not start <= now <= end:
        state = "not valid yet" if now < start else "expired"
        raise ValueError(f"certificate {path} is {state}: valid from {start:%Y-%m-%d %H:%M} to "
                         f"{end:%Y-%m-%d %H:%M} UTC, now is {now:%Y-%m-%d %H:%M} UTC; make new "
                         "ones with splitnet certs")


def names_of(cert: x509.Certificate) -> tuple[str | None, list[str]]:
    """Return a certificate's common name and its DNS subject alternative names."""
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return (str(common[0].value) if common else None), dns


def load_identity(files: TlsFiles, me: int, now: dt.datetime | None = None) -> Identity:
    """Read and check client ``me``'s TLS files; ValueError naming the file and the rule."""
    now = now or dt.datetime.now(dt.timezone.utc)
    ca_pem, ca = _certificate(files.ca, "CA certificate")
    _check_dates(files.ca, ca, now)
    cert_pem, cert = _certificate(files.cert, "certificate")
    _check_dates(files.cert, cert, now)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError(f"certificate {files.cert} was not issued by the cluster CA "
                         f"{files.ca}") from None
    common, dns = names_of(cert)
    if common != client_name(me) or client_name(me) not in dns:
        raise ValueError(f"certificate {files.cert} is for {common!r}, not for "
                         f"{client_name(me)!r} (CLIENT_NUMBER={me})")
    key_pem = _read(files.key, "key")
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"key {files.key}: not an unencrypted PEM private key ({exc})") from None
    if key.public_key().public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo) != \
            cert.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo):
        raise ValueError(f"key {files.key} does not belong to certificate {files.cert}")
    return Identity(me, files, ca_pem, cert_pem, key_pem, cert.not_valid_after_utc,
                    ANY_TORRENT in dns)
