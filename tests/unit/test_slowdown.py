"""The test-only SPLITNET_TEST_SLOWDOWN hook: parsing, its quota, and its error without cgroups."""

import os
import subprocess
import sys

import pytest

from splitnet.errors import ConfigError
from splitnet.learning.slowdown import (
    GROUP,
    cgroup_root,
    check_quota,
    enter_quota,
    quota_of,
    remove_groups,
    slowdown_factor,
)


@pytest.mark.parametrize(("value", "client", "says"), [
    ("0.5", "1", "'?0.5'? is not a factor >= 1"), ("fast", "1", "'fast' is not a number"),
    ("1,2", "9", "lists 2 factors, none for CLIENT_NUMBER=9"), ("nan", "1", "not a factor"),
    ("1,1,x,1,1", "3", "'x' is not a number")])
def test_a_bad_slowdown_is_an_error_naming_the_hook_and_the_rule(monkeypatch, value, client,
                                                                   says):
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", value)
    monkeypatch.setenv("CLIENT_NUMBER", client)
    with pytest.raises(ConfigError, match=says) as info:
        slowdown_factor()
    assert "SPLITNET_TEST_SLOWDOWN" in str(info.value) and "e.g. 1,1,8,8,1" in str(info.value)


@pytest.mark.parametrize(("factor", "quota", "period"), [
    (2, 5000, 10000), (8, 1250, 10000), (20, 1000, 20000), (1.5, 6667, 10000)])
def test_the_quota_is_one_kth_of_a_core_and_never_below_the_kernels_minimum(factor, quota,
                                                                            period):
    assert quota_of(factor) == (quota, period)


def test_at_factor_one_no_cgroup_is_touched(monkeypatch, tmp_path):
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", "1,1,8,8,1")
    monkeypatch.setenv("CLIENT_NUMBER", "1")
    assert enter_quota(tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_slowed_client_writes_its_quota_and_pid_into_its_own_group(monkeypatch, tmp_path):
    # a cgroup v2 layout imitated in a folder: cpu.max and cgroup.procs are plain files here
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", "1,1,8,8,1")
    monkeypatch.setenv("CLIENT_NUMBER", "4")
    group = enter_quota(tmp_path)
    assert group == tmp_path / GROUP / f"client4-{os.getpid()}"
    assert (group / "cpu.max").read_text() == "1250 10000\n"
    assert (group / "cgroup.procs").read_text() == f"{os.getpid()}\n"


def test_without_a_writable_cgroup_the_client_stops_with_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("SPLITNET_TEST_SLOWDOWN", "8")
    blocker = tmp_path / "not-a-cgroup"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="needs root and a writable cgroup cpu controller"):
        enter_quota(blocker)
    with pytest.raises(ConfigError, match="SPLITNET_TEST_SLOWDOWN: cannot make a cgroup"):
        check_quota(blocker)


def _writable_cgroups() -> bool:
    try:
        check_quota()
    except ConfigError:
        return False
    return True


@pytest.mark.skipif(not _writable_cgroups(), reason="needs root and a cgroup cpu controller")
def test_a_real_client_process_runs_in_its_quota_group_which_is_gone_after_it_exits():
    code = ("from splitnet.learning.slowdown import enter_quota; g = enter_quota(); "
            "print(g); print(open('/proc/self/cgroup').read()); "
            "print((g / 'cpu.cfs_quota_us').read_text() if (g / 'cpu.cfs_quota_us').exists() "
            "else (g / 'cpu.max').read_text())")
    env = {**os.environ, "SPLITNET_TEST_SLOWDOWN": "1,4", "CLIENT_NUMBER": "2"}
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                             text=True, check=True, timeout=60).stdout.split("\n")
        out = [line for line in out if line.strip()]
        group = out[0]
        name = group.split(f"/{GROUP}/")[1]
        assert name.startswith("client2-")
        assert any(line.endswith(f"/{GROUP}/{name}") for line in out if ":cpu" in line
                   or line.startswith("0::"))
        assert out[-1].split()[0] == "2500"  # 1/4 of a 10 ms period
        assert not (cgroup_root() / GROUP / name).exists()  # left and removed at exit
    finally:
        remove_groups()
