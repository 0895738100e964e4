"""Client processes on loopback for the integration tests: start them, read them, stop them."""

import os
import subprocess
import sys
import threading

from splitnet.transport.ports import free_ports

TOKEN = "s3cret-token-for-tests"


def spawn(path, ports, k, **extra):
    """Start ``splitnet run`` as client ``k`` of the clients at ``ports``; collect its output.

    Return the process, its output lines (filled as they come) and the reading thread.
    """
    env = {**os.environ, "PEERS": ",".join(f"127.0.0.1:{p}" for p in ports),
           "TORRENT_PORT": "0", "METRICS_PORT": "0", "SPLITNET_TOKEN": TOKEN,
           "LISTEN_HOST": "127.0.0.1", "TORCH_THREADS": "1", "TLS": "off", **extra,
           "CLIENT_NUMBER": str(k)}
    proc = subprocess.Popen([sys.executable, "-m", "splitnet", "run", "--env-file", str(path)],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    return proc, lines, reader


def start_clients(path, **extra):
    """Start clients 1..3 of ``path``; return processes, output lines and readers, by number."""
    ports = free_ports(3)
    started = {k: spawn(path, ports, k, **extra) for k in (1, 2, 3)}
    return ({k: s[0] for k, s in started.items()}, {k: s[1] for k, s in started.items()},
            [s[2] for s in started.values()])


def stop(procs, readers):
    """Kill what still runs, then collect every process and its output."""
    for p in procs.values():
        if p.poll() is None:
            p.kill()
    for reader in readers:
        reader.join(timeout=5)
    for p in procs.values():
        p.wait()
        p.stdout.close()


def every_checkpoint(folder, round_):
    """Every client's checkpoint manifest of ``round_`` under ``folder/checkpoints``."""
    return [folder / "checkpoints" / f"client{k}-round{round_:06d}.json" for k in (1, 2, 3)]
