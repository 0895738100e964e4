"""The Flower row's clean-up reaches a process that left its group (as flwr's SuperExec does)."""
import os
import subprocess
import sys
import time

from splitnet.bench.flower import _Processes, _working_in


def test_close_stops_a_process_that_started_its_own_session_and_ignores_sigterm(tmp_path):
    folder = tmp_path.resolve()
    procs = _Processes(folder, dict(os.environ))
    # the parent starts an escapee in a new session (out of killpg's reach) that ignores SIGTERM
    escapee = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
               "open('escaped', 'w').close(); time.sleep(600)")
    parent = ("import subprocess, sys, time; "
              f"subprocess.Popen([sys.executable, '-c', {escapee!r}], start_new_session=True); "
              "time.sleep(600)")
    procs.start("parent", [sys.executable, "-c", parent])
    deadline = time.time() + 30
    while not (folder / "escaped").exists():
        assert time.time() < deadline, "the escapee never started"
        time.sleep(0.1)
    assert len(_working_in(folder)) == 2
    procs.close()
    assert _working_in(folder) == []
    assert subprocess.run(["pgrep", "-f", "escaped"], capture_output=True).stdout == b""
