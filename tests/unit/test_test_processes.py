"""The integration tests' process helpers (tests/integration/procs.py) leave nothing behind
(Note: nothing left behind): checked with fake processes, none started."""

import io
import signal
import subprocess

import pytest

from tests.integration import procs


class FakeProc:
    """A process that runs until a signal in ``fatal`` (SIGKILL always ends it)."""

    def __init__(self, pid=4242, fatal=(signal.SIGKILL,)):
        self.pid, self.fatal, self.returncode = pid, fatal, None
        self.signals: list[int] = []
        self.stdout, self.stderr = io.StringIO("out\n"), io.StringIO("err\n")

    def send_signal(self, sig):
        self.signals.append(sig)
        if sig in self.fatal or sig == signal.SIGKILL:
            self.returncode = -sig

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            if timeout is None:
                raise AssertionError("waited forever on a process nobody stopped")
            raise subprocess.TimeoutExpired("splitnet", timeout)
        return self.returncode


class Reader:
    def __init__(self):
        self.joined = False

    def join(self, timeout=None):
        self.joined = True


def fake_client(pid=4242):
    return procs.Client(FakeProc(pid), ["line\n"], Reader())


@pytest.fixture
def spawned(monkeypatch):
    started: list[procs.Client] = []

    def spawn(path, ports, k, **extra):
        started.append(fake_client(k))
        return started[-1]

    monkeypatch.setattr(procs, "spawn", spawn)
    return started


def test_running_kills_and_collects_every_client_when_the_test_fails_midway(spawned):
    with pytest.raises(AssertionError, match="a wait ran out"), \
            procs.running("three.env", ports=[1, 2, 3]) as clients:
        clients[3].proc.send_signal(signal.SIGSTOP)  # a frozen one is killed all the same
        raise AssertionError("a wait ran out")
    assert len(spawned) == 3
    assert all(c.proc.returncode == -signal.SIGKILL for c in spawned)
    assert all(c.reader.joined and c.proc.stdout.closed for c in spawned)


def test_a_restarted_client_is_the_one_collected_and_the_killed_one_is_collected_at_once(
        spawned):
    with pytest.raises(KeyboardInterrupt), \
            procs.running("three.env", ports=[1, 2, 3]) as clients:
        killed = procs.restart(clients, "three.env", [1, 2, 3], 2)
        raise KeyboardInterrupt
    old, new = spawned[1], spawned[3]
    assert killed == "line\n" and old.proc.stdout.closed and old.reader.joined
    assert new.proc.returncode == -signal.SIGKILL and new.proc.stdout.closed


def test_stop_session_interrupts_local_then_kills_whatever_is_left_in_its_session(monkeypatch):
    leader = FakeProc(pid=100, fatal=())  # deaf to SIGINT: the grace runs out
    left = {100: leader, 101: FakeProc(pid=101)}  # an orphaned client in its session
    monkeypatch.setattr(procs, "session_members",
                        lambda sid: [pid for pid, p in left.items() if p.returncode is None])
    monkeypatch.setattr(procs.os, "kill", lambda pid, sig: left[pid].send_signal(sig))
    procs.stop_session(leader, grace=0.01)
    assert leader.signals == [signal.SIGINT, signal.SIGKILL]
    assert left[101].signals == [signal.SIGKILL]


def test_stop_session_of_an_ended_local_only_kills_what_it_left_behind(monkeypatch):
    leader = FakeProc(pid=100)
    leader.returncode = 0
    monkeypatch.setattr(procs, "session_members", lambda sid: [])
    monkeypatch.setattr(procs.os, "kill", lambda pid, sig: pytest.fail("nothing to kill"))
    procs.stop_session(leader)
    assert leader.signals == []


def test_run_local_stops_the_whole_session_when_its_timeout_runs_out(monkeypatch):
    leader = FakeProc(pid=100)
    stopped = []
    monkeypatch.setattr(procs, "_local", lambda args, env, stderr: leader)
    monkeypatch.setattr(procs, "stop_session", lambda proc: stopped.append(proc) or proc.kill())
    with pytest.raises(subprocess.TimeoutExpired):
        procs.run_local("--env-file", "three.env", timeout=0.01)
    assert stopped == [leader] and leader.stdout.closed and leader.stderr.closed


def test_run_local_returns_pid_status_and_both_outputs(monkeypatch):
    leader = FakeProc(pid=100)
    leader.returncode = 2
    monkeypatch.setattr(procs, "_local", lambda args, env, stderr: leader)
    monkeypatch.setattr(procs, "session_members", lambda sid: [])
    assert procs.run_local("--env-file", "bad.env", timeout=5) == (100, 2, "out\n", "err\n")


@pytest.mark.parametrize("comm", ["python3", "a) b (c", "x y"])
def test_the_session_is_read_past_any_command_name(comm):
    line = f"4242 ({comm}) S 4200 4242 4242 0 -1 4194560 1 0 0 0"
    assert procs.session_of(line) == ("S", 4242)
