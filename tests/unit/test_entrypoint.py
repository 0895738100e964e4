"""docker-entrypoint.sh's private copy of the TLS files follows the client's TLS rule.

The real script runs with stand-ins for ``id``, ``install``, ``chown`` and ``setpriv`` on PATH
(no Docker, no root): they record what the script asked for.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[2] / "docker-entrypoint.sh"
STANDINS = {
    "id": 'if [ "${1:-}" = "-u" ]; then echo 0; fi\nexit 0\n',
    "install": 'echo "install $*" >> "$LOG"\n',
    "chown": 'echo "chown $*" >> "$LOG"\n',
    "setpriv": 'echo "setpriv TLS_DIR=${TLS_DIR:-}" >> "$LOG"\n',
}


def _entrypoint(tmp_path: Path, tls: str | None, with_ca: bool) -> str:
    bin_dir, certs, log = tmp_path / "bin", tmp_path / "certs", tmp_path / "log"
    bin_dir.mkdir()
    for name, body in STANDINS.items():
        (bin_dir / name).write_text("#!/bin/sh\n" + body)
        (bin_dir / name).chmod(0o755)
    certs.mkdir()
    for name in ("client2.crt", "client2.key", *(["ca.crt"] if with_ca else [])):
        (certs / name).write_text("pem")
    env = {"PATH": f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}", "LOG": str(log),
           "NO_TC": "true", "TLS_DIR": str(certs), "CLIENT_NUMBER": "2",
           **({"TLS": tls} if tls is not None else {})}
    subprocess.run(["sh", str(SCRIPT), "splitnet", "run"], env=env, check=True, timeout=30)
    return log.read_text()


@pytest.mark.parametrize(("tls", "with_ca"), [(None, True), ("auto", True), ("", True),
                                              ("AUTO", True), ("on", True), ("on", False)])
def test_the_client_gets_its_private_tls_copy_when_tls_is_on(tmp_path, tls, with_ca):
    log = _entrypoint(tmp_path, tls, with_ca)
    assert "client2.key /home/splitnet/.tls/client2.key" in log
    assert "setpriv TLS_DIR=/home/splitnet/.tls" in log


@pytest.mark.parametrize(("tls", "with_ca"), [("off", True), ("auto", False), (None, False)])
def test_no_copy_when_tls_is_off(tmp_path, tls, with_ca):
    log = _entrypoint(tmp_path, tls, with_ca)
    assert "install" not in log and f"setpriv TLS_DIR={tmp_path / 'certs'}" in log
