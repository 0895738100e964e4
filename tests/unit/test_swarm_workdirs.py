"""A killed client's BitTorrent folder is removed by the next process of that client number."""

import os
import subprocess
import sys
import tempfile

import pytest

from splitnet.transport.swarm import Swarm, remove_stale_workdirs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_this_clients_folders_of_gone_processes_are_removed(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    stale = tmp_path / f"splitnet-torrents-3-{dead}-abc"
    keep = [tmp_path / f"splitnet-torrents-3-{alive}-abc",    # a live process of client 3
            tmp_path / f"splitnet-torrents-4-{dead}-abc",     # another client's number
            tmp_path / f"splitnet-torrents-33-{dead}-abc",    # a number that starts with 3
            tmp_path / "splitnet-torrents-3-oldstyle"]        # no pid: cannot tell, kept
    for path in (stale, *keep):
        path.mkdir()
        (path / "piece").write_bytes(b"x")
    assert remove_stale_workdirs(3, tmp_path) == [stale]
    assert not stale.exists() and all(path.exists() for path in keep)


def test_open_clears_a_killed_predecessors_folder(tmp_path, monkeypatch):
    pytest.importorskip("libtorrent")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"splitnet-torrents-2-{_dead_pid()}-xyz"
    stale.mkdir()
    swarm = Swarm(2, timeout=1.0, host="127.0.0.1")
    swarm.open()
    try:
        assert not stale.exists()
        [own] = tmp_path.glob("splitnet-torrents-2-*")
        assert own.name.startswith(f"splitnet-torrents-2-{os.getpid()}-")
    finally:
        swarm.close()
    assert not list(tmp_path.glob("splitnet-torrents-2-*"))
