"""Processes of the integration tests: clients on loopback and ``splitnet local``; start, read, stop.

Note: nothing left behind. A test that fails midway (a wait that ran out, an assertion between a
kill and the end of the run) must not leave processes behind: clients still training, or a
SIGSTOPped one, hold ports, cores and files under every later test and make it fail or crawl.
So every process a test starts is killed and collected on any exit:

- clients (``splitnet run``): :func:`running` yields them by number and, however the block ends,
  kills (SIGKILL, which ends a stopped process too) and collects every client the dict holds
  then, so a client restarted by the test (:func:`restart`) is covered as well;
- ``splitnet local``: it runs in its own session (``start_new_session``) and is stopped with
  SIGINT (it stops its clients itself and cleans up, e.g. an emulated WAN), then, after a
  grace, SIGKILL to every process left in its session (:func:`stop_session`).
  ``subprocess.run``'s timeout kills only ``splitnet local`` and orphans its clients.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from splitnet.transport.ports import free_ports

TOKEN = "s3cret-token-for-tests"
GRACE = 15.0  # seconds `splitnet local` gets after SIGINT (it gives its clients 10)


class Client(NamedTuple):
    """A started process, the lines it wrote so far (stdout and stderr) and their reader."""

    proc: subprocess.Popen
    lines: list[str]
    reader: threading.Thread

    def text(self) -> str:
        """Return its output so far."""
        return "".join(self.lines)


def _lines(stream) -> tuple[list[str], threading.Thread]:
    """Collect ``stream``'s lines as they come; return the list and its reading thread."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(stream), daemon=True)
    reader.start()
    return lines, reader


def _read(proc: subprocess.Popen) -> Client:
    return Client(proc, *_lines(proc.stdout))


def spawn(path, ports, k, **extra) -> Client:
    """Start ``splitnet run`` as client ``k`` of the clients at ``ports``; collect its output."""
    env = {**os.environ, "PEERS": ",".join(f"127.0.0.1:{p}" for p in ports),
           "TORRENT_PORT": "0", "METRICS_PORT": "0", "SPLITNET_TOKEN": TOKEN,
           "LISTEN_HOST": "127.0.0.1", "TORCH_THREADS": "1", "TLS": "off", **extra,
           "CLIENT_NUMBER": str(k)}
    return _read(subprocess.Popen([sys.executable, "-m", "splitnet", "run", "--env-file",
                                   str(path)], env=env, text=True, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT))


def stop(clients: dict[int, Client]) -> dict[int, str]:
    """Kill every client that still runs, then collect each; return every client's output."""
    for client in clients.values():
        if client.proc.poll() is None:
            client.proc.kill()
    for client in clients.values():
        client.proc.wait()
        client.reader.join(timeout=5)
        client.proc.stdout.close()
    return {k: client.text() for k, client in clients.items()}


@contextlib.contextmanager
def running(path, ports=None, numbers=(1, 2, 3), **extra) -> Iterator[dict[int, Client]]:
    """Start clients ``numbers`` of ``path``; yield them by number (Note: nothing left behind)."""
    ports = free_ports(len(numbers)) if ports is None else ports
    clients: dict[int, Client] = {}
    try:
        for k in numbers:
            clients[k] = spawn(path, ports, k, **extra)
        yield clients
    finally:
        stop(clients)


def restart(clients: dict[int, Client], path, ports, k, **extra) -> str:
    """SIGKILL client ``k``, collect it and start it again (what a restart policy does).

    Return the killed incarnation's output.
    """
    old = clients[k]
    old.proc.send_signal(signal.SIGKILL)
    killed = stop({k: old})[k]
    clients[k] = spawn(path, ports, k, **extra)
    return killed


def wait_all(clients: dict[int, Client], expected: dict[int, int], timeout=240) -> None:
    """Wait for every client; assert its exit status, with its output's end if it differs."""
    for k, client in clients.items():
        assert client.proc.wait(timeout=timeout) == expected[k], (k, client.text()[-3000:])


def every_checkpoint(folder, round_):
    """Every client's checkpoint manifest of ``round_`` under ``folder/checkpoints``."""
    return [folder / "checkpoints" / f"client{k}-round{round_:06d}.json" for k in (1, 2, 3)]


def assert_running(clients: dict[int, Client]) -> None:
    """Fail if a client ended, with its exit status and its output's end."""
    ended = {k: c.proc.returncode for k, c in clients.items() if c.proc.poll() is not None}
    assert not ended, (ended, {k: clients[k].text()[-2000:] for k in ended})


def wait_for_files(names, clients: dict[int, Client], timeout=240) -> None:
    """Wait until every file of ``names`` exists; fail if a client ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not all(name.exists() for name in names):
        assert time.monotonic() < deadline, [n.name for n in names if not n.exists()]
        assert_running(clients)
        time.sleep(0.02)


# ``splitnet local``


def session_of(stat: str) -> tuple[str, int]:
    """Return the state and the session id of a ``/proc/<pid>/stat`` line."""
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[3])


def session_members(sid: int) -> list[int]:
    """Return the pids of the live (not zombie) processes in session ``sid``."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, session = session_of((entry / "stat").read_text())
            except (OSError, ValueError):
                continue  # gone meanwhile
            if session == sid and state != "Z":
                members.append(int(entry.name))
    return members


def kill_session(sid: int, timeout=10.0) -> None:
    """SIGKILL every process in session ``sid`` until none is left (or ``timeout`` passed)."""
    deadline = time.monotonic() + timeout
    while (members := session_members(sid)) and time.monotonic() < deadline:
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def stop_session(proc: subprocess.Popen, grace=GRACE) -> None:
    """Stop ``splitnet local`` (a session leader): SIGINT, then SIGKILL to its whole session.

    (Note: nothing left behind.) Harmless once it ended: only what it left behind is killed.
    """
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
    kill_session(proc.pid)
    proc.wait()


def _local(args, env, stderr) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "splitnet", "local", *map(str, args)],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=stderr,
                            start_new_session=True)


@contextlib.contextmanager
def local(*args, env=None) -> Iterator[Client]:
    """Start ``splitnet local *args`` (stderr into stdout) in its own session; yield it.

    However the block ends, whatever still runs in its session is stopped (:func:`stop_session`)
    and its output collected.
    """
    client = _read(_local(args, env, subprocess.STDOUT))
    try:
        yield client
    finally:
        stop_session(client.proc)
        client.reader.join(timeout=5)
        client.proc.stdout.close()


class Finished(NamedTuple):
    """A ``splitnet local`` that ended: its pid, exit status and output."""

    pid: int
    returncode: int
    stdout: str
    stderr: str


def run_local(*args, timeout, env=None) -> Finished:
    """Run ``splitnet local *args`` to its end, like ``subprocess.run(capture_output=True,
    text=True, timeout=timeout)``, but in its own session, stopped whole on any exit."""
    proc = _local(args, env, subprocess.PIPE)
    (out, out_reader), (err, err_reader) = _lines(proc.stdout), _lines(proc.stderr)
    try:
        proc.wait(timeout=timeout)
    finally:
        stop_session(proc)
        for stream, reader in ((proc.stdout, out_reader), (proc.stderr, err_reader)):
            reader.join(timeout=5)
            stream.close()
    return Finished(proc.pid, proc.returncode, "".join(out), "".join(err))
