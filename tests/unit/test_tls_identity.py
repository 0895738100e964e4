"""Cluster certificates (splitnet certs) and the checks every client makes at start."""

import datetime as dt
import stat

import pytest

from splitnet.errors import ConfigError
from splitnet.ops.certs import make_certs
from splitnet.transport.tls import TlsFiles, client_number, load_identity


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("certs")
    make_certs(folder, [1, 2, 3], hosts=["node1.example", "10.0.0.7"])
    return folder


def test_each_client_gets_a_key_only_it_can_read_and_a_certificate_naming_it(certs):
    for k in (1, 2, 3):
        identity = load_identity(TlsFiles.in_folder(certs, k), k)
        assert identity.me == k
        assert stat.S_IMODE((certs / f"client{k}.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((certs / "ca.key").stat().st_mode) == 0o600
    assert client_number("client12") == 12
    assert client_number("client0") is None and client_number("xclient1") is None


def test_a_certificate_for_another_client_is_refused(certs):
    files = TlsFiles(certs / "ca.crt", certs / "client1.crt", certs / "client1.key")
    with pytest.raises(ValueError, match=r"client1.crt is for 'client1', not for 'client2'"):
        load_identity(files, 2)


def test_a_certificate_of_another_ca_is_refused(certs, tmp_path):
    make_certs(tmp_path, [1])
    files = TlsFiles(certs / "ca.crt", tmp_path / "client1.crt", tmp_path / "client1.key")
    with pytest.raises(ValueError, match="was not issued by the cluster CA"):
        load_identity(files, 1)


def test_a_key_of_another_certificate_is_refused(certs):
    files = TlsFiles(certs / "ca.crt", certs / "client1.crt", certs / "client2.key")
    with pytest.raises(ValueError, match="does not belong to certificate"):
        load_identity(files, 1)


def test_expired_and_not_yet_valid_certificates_name_the_file_and_the_dates(certs):
    files = TlsFiles.in_folder(certs, 1)
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=400)
    with pytest.raises(ValueError, match=r"ca.crt is expired: valid from \d{4}-.* to \d{4}-"):
        load_identity(files, 1, now=later)
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    with pytest.raises(ValueError, match="is not valid yet"):
        load_identity(files, 1, now=earlier)


def test_missing_or_garbage_files_are_named(certs, tmp_path):
    (tmp_path / "client1.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match=r"certificate .*client1.crt: not a PEM certificate"):
        load_identity(TlsFiles(certs / "ca.crt", tmp_path / "client1.crt", certs / "x"), 1)
    with pytest.raises(ValueError, match=r"CA certificate .*nowhere.crt: cannot read it"):
        load_identity(TlsFiles(tmp_path / "nowhere.crt", certs / "client1.crt", certs / "x"), 1)


def test_files_are_never_overwritten_and_a_client_can_be_added(certs, tmp_path):
    with pytest.raises(ConfigError, match="exists; certificates and keys are never overwritten"):
        make_certs(certs, [1])
    written = make_certs(certs, [4], add=True)
    assert [p.name for p in written] == ["client4.crt", "client4.key"]
    assert load_identity(TlsFiles.in_folder(certs, 4), 4).me == 4
    with pytest.raises(ConfigError, match="no usable CA"):
        make_certs(tmp_path / "empty", [1], add=True)


def _settings(**values):
    from splitnet.config import load

    two = '[["1_1","1_2","1_3","1_4","1_5","1_6","1_7","1_8"],["2_1","2_2","2_3","2_4","2_5",' \
          '"2_6","2_7","2_8"]]'
    return load(values={"NUM_CLIENTS": "2", "SIMULATION_STAGES_CLIENTS": two,
                        "CLIENT_NUMBER": "2", "PEERS": "127.0.0.1:1,127.0.0.1:2", **values})


def test_tls_on_loads_the_identity_needs_no_token_and_keeps_bittorrent(certs):
    from splitnet.node.client import network_options
    from splitnet.plan.plan import build_plan

    for mode in ("on", "auto"):  # auto: on, since TLS_DIR holds the CA
        settings = _settings(TLS=mode, TLS_DIR=str(certs))
        options = network_options(settings, build_plan(settings.training))
        assert options.identity is not None and options.identity.me == 2
        assert options.identity.covers_torrents  # SSL torrents
        assert options.token == "" and options.bulk_transport == "auto"


def test_tls_is_never_off_unless_asked_for(tmp_path):
    from splitnet.node.client import network_options
    from splitnet.plan.plan import build_plan

    settings = _settings(TLS_DIR=str(tmp_path), SPLITNET_TOKEN="a-long-enough-token-0123")
    assert settings.network.tls == "auto"
    with pytest.raises(ConfigError, match=r"TLS=auto: TLS_DIR=.* holds no ca.crt; .*splitnet "
                                          r"certs .*or set TLS=off"):
        network_options(settings, build_plan(settings.training))


def test_certificates_without_the_torrent_name_are_refused_for_bittorrent(certs, tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from splitnet.node.client import network_options
    from splitnet.plan.plan import build_plan

    folder = tmp_path / "narrow"
    folder.mkdir()
    for name in ("ca.crt", "client2.key"):
        (folder / name).write_bytes((certs / name).read_bytes())
    ca_key = serialization.load_pem_private_key((certs / "ca.key").read_bytes(), None)
    old = x509.load_pem_x509_certificate((certs / "client2.crt").read_bytes())
    narrow = (x509.CertificateBuilder().subject_name(old.subject).issuer_name(old.issuer)
              .public_key(old.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(old.not_valid_before_utc)
              .not_valid_after(old.not_valid_after_utc)
              .add_extension(x509.SubjectAlternativeName([x509.DNSName("client2")]), False)
              .sign(ca_key, hashes.SHA256()))
    (folder / "client2.crt").write_bytes(narrow.public_bytes(serialization.Encoding.PEM))
    settings = _settings(TLS="on", TLS_DIR=str(folder), BULK_TRANSPORT="torrent")
    with pytest.raises(ConfigError, match=r"client2.crt has no DNS name '\*'.*BULK_TRANSPORT=grpc"):
        network_options(settings, build_plan(settings.training))
    settings = _settings(TLS="on", TLS_DIR=str(folder), BULK_TRANSPORT="grpc")
    assert network_options(settings, build_plan(settings.training)).identity is not None


def test_tls_on_without_its_files_and_tls_off_without_a_token_are_named(certs, tmp_path, caplog):
    from splitnet.node.client import network_options
    from splitnet.plan.plan import build_plan

    settings = _settings(TLS="on", TLS_DIR=str(tmp_path))
    with pytest.raises(ConfigError, match=r"TLS=on \(TLS_DIR=.*\): CA certificate .*ca.crt"):
        network_options(settings, build_plan(settings.training))
    settings = _settings(TLS="off")
    with pytest.raises(ConfigError, match="no cluster token"):
        network_options(settings, build_plan(settings.training))
    settings = _settings(TLS="off", SPLITNET_TOKEN="a-long-enough-token-0123")
    options = network_options(settings, build_plan(settings.training))
    assert options.identity is None and options.bulk_transport == "auto"
    assert "TLS=off: peers are known by the shared token alone" in caplog.text
