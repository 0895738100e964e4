"""WAN emulation without root: the --wan syntax, its errors, and the relay's scheduling."""

import os
import socket
import statistics
import struct
import threading
import time

import pytest

from splitnet.errors import ConfigError
from splitnet.ops.wan import Link, Wan, parse_links, rtt_links
from splitnet.ops.wan_relay import Relay, RelayLink


def test_a_spec_applies_to_every_endpoint_and_k_overrides_only_its_keys():
    links = parse_links(["3:delay=40ms", "delay=10ms,jitter=1ms,loss=0.5%,rate=100mbit"], 3)
    assert sorted(links) == [0, 1, 2, 3]
    assert links[1] == Link(delay_ms=10.0, jitter_ms=1.0, loss=0.005, rate="100mbit")
    assert links[3] == Link(delay_ms=40.0, jitter_ms=1.0, loss=0.005, rate="100mbit")


def test_units_and_fractions():
    links = parse_links(["delay=500us,jitter=0.01s,loss=0.25", "2:rate=5MBps"], 2)
    assert links[1] == Link(delay_ms=0.5, jitter_ms=10.0, loss=0.25)
    assert links[2].rate == "5mbps" and links[0].rate is None
    assert parse_links([], 1) == {0: Link(), 1: Link()}


@pytest.mark.parametrize(("spec", "words"), [
    ("delay=-5ms", ["delay=-5ms", "must not be negative"]),
    ("loss=150%", ["loss=150%", "between 0 and 100%"]),
    ("bandwidth=1mbit", ["unknown key 'bandwidth'", "expected delay, jitter, loss or rate"]),
    ("delay=10", ["delay '10'", "expected a time with a unit"]),
    ("rate=fast", ["rate 'fast'", "expected a positive tc rate"]),
    ("delay", ["'delay'", "expected 'delay=10ms"]),
    ("9:delay=1ms", ["endpoint 9 does not exist"]),
    ("loss=1", ["loss '1': a fraction must be below 1", "write 1% for 1 percent"]),
    ("delay=5ms,delay=7ms", ["delay is given twice"]),
])
def test_bad_values_are_named_config_errors(spec, words):
    with pytest.raises(ConfigError) as caught:
        parse_links([spec], 3)
    text = str(caught.value)
    assert "[wan]" in text and f"--wan '{spec}'" in text
    for word in words:
        assert word in text


def test_a_key_given_twice_for_one_endpoint_is_refused_across_specs():
    with pytest.raises(ConfigError, match="delay is given twice for every endpoint"):
        parse_links(["delay=5ms", "delay=7ms"], 2)
    with pytest.raises(ConfigError, match="delay is given twice for endpoint 1"):
        parse_links(["1:delay=5ms", "1:delay=7ms"], 2)
    assert parse_links(["delay=5ms", "1:delay=7ms"], 2)[1].delay_ms == 7.0  # K: overrides


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(ConfigError) as caught:
        parse_links(["delay=-1ms,loss=2"], 2)
    assert len(caught.value.violations) == 2


def test_rtt_links_split_the_rtt_in_two():
    links = rtt_links(20, 2, rate="50mbit")
    assert links == {k: Link(delay_ms=10.0, rate="50mbit") for k in range(3)}
    with pytest.raises(ConfigError, match="must not be negative"):
        rtt_links(-1, 2)


def test_wan_names_are_unique_per_instance_and_prefixes_enter_them():
    a, b = Wan({}, [1, 2]), Wan({}, [1, 2])
    assert a.router != b.router and a.names[1] != b.names[1]
    assert str(os.getpid()) in a.router
    assert a.prefix(2) == ["ip", "netns", "exec", a.names[2]]
    assert a.address(2) == "10.77.2.2"
    with pytest.raises(ConfigError, match="expected 0..254"):
        Wan({}, [300])


def test_a_relay_link_round_trips_through_its_argument():
    link = RelayLink(0.005, 0.001, 0.1)
    assert RelayLink.parse(link.format(4)) == (4, link)


def _packet(k: int, n: int) -> bytes:
    """A fake IPv4 packet from 10.77.k.2 carrying the number n."""
    return bytes([0x45]) + bytes(11) + bytes([10, 77, k, 2]) + bytes(4) + struct.pack("!I", n)


def _relay(links, packets, timeout=3.0):
    """Feed ``packets`` through a Relay over a socket pair; return (time held, packet)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    relay = Relay(theirs.fileno(), links, seed=1)
    loops = [threading.Thread(target=loop) for loop in (relay.read_loop, relay.write_loop)]
    sent, got = {}, []

    def receive():
        ours.settimeout(timeout)
        try:
            while len(got) < len(packets):
                packet = ours.recv(4096)
                got.append((time.monotonic() - sent[packet], packet))
        except TimeoutError:
            pass

    receiver = threading.Thread(target=receive)
    for thread in [*loops, receiver]:
        thread.start()
    try:
        for packet in packets:
            sent[packet] = time.monotonic()
            ours.send(packet)
            time.sleep(0.0002)
        receiver.join()
    finally:
        ours.close()  # the relay reads the end and stops
        for thread in loops:
            thread.join(timeout=5)
        theirs.close()
    return got


def test_the_relay_holds_each_packet_for_its_sources_delay():
    got = _relay({1: RelayLink(0.010, 0, 0), 2: RelayLink(0.002, 0, 0)},
                 [_packet(k, n) for n in range(20) for k in (1, 2)])
    held = {k: [t for t, p in got if p[14] == k] for k in (1, 2)}
    assert len(held[1]) == len(held[2]) == 20
    assert min(held[1]) >= 0.010 and min(held[2]) >= 0.002  # never early
    # Note: shared machine. A busy one adds the same wait to both sources' interleaved packets
    # (a CI run saw medians of 13 ms for the 10 ms link): their difference is the delays'.
    gap = statistics.median(held[1]) - statistics.median(held[2])
    assert abs(gap - 0.008) < 0.002, (held[1], held[2])


def test_a_star_link_holds_every_source_outside_the_emulation_s_addresses():
    """``*`` (the Swarm lab's nodes relay their own packets, from 10.78.0.1K)."""
    k, link = RelayLink.parse("*:0.05:0:0")
    assert k == -1 and link == RelayLink(0.05, 0, 0)
    lab = [bytes([0x45]) + bytes(11) + bytes([10, 78, 0, 12]) + bytes(4) + struct.pack("!I", n)
           for n in range(20)]
    got = _relay({k: link, 1: RelayLink(0.010, 0, 0)}, [*lab, _packet(3, 99)])
    held = {p[12:16]: t for t, p in got}
    assert len(got) == 21
    assert min(t for t, p in got if p[13] == 78) >= 0.05
    # an emulated endpoint without a link: no delay. Sent last, it still comes out first (an
    # order, not a time: a busy machine delays every packet)
    assert got[0][1] == _packet(3, 99) and held[bytes([10, 77, 3, 2])] < 0.05


def test_jitter_spreads_delays_but_keeps_each_sources_order():
    got = _relay({1: RelayLink(0.005, 0.004, 0)}, [_packet(1, n) for n in range(200)])
    order = [struct.unpack("!I", p[20:24])[0] for _, p in got]
    assert order == list(range(200))
    delays = [t for t, _ in got]
    assert max(delays) - min(delays) > 0.004 and min(delays) >= 0.001


def test_loss_drops_about_the_asked_fraction():
    got = _relay({1: RelayLink(0, 0, 0.2)}, [_packet(1, n) for n in range(1000)], timeout=0.5)
    assert 140 <= 1000 - len(got) <= 260  # 200 ± 4.4 sigma


def test_local_says_why_when_this_machine_cannot_emulate_a_wan(monkeypatch, tmp_path):
    from splitnet.ops import local

    from ..conftest import plan_of

    monkeypatch.setattr(local, "wan_unavailable", lambda: "WAN emulation needs root")
    with pytest.raises(ConfigError, match=r"\[wan\] --wan: WAN emulation needs root"):
        local.run_local(plan_of("cnn_all_local.env"), None, tmp_path, wan=rtt_links(10, 2))
    assert not (tmp_path / "runs").exists()  # refused before anything started


def test_a_link_says_what_it_applies():
    assert str(Link(5, 1, 0.005, "100mbit")) == "delay 5 ms ± 1 ms, loss 0.50%, rate 100mbit"
    assert str(Link()) == "delay 0 ms"


@pytest.mark.parametrize(("args", "message"), [
    (["--wan", "delay=abc"], "--wan 'delay=abc': delay 'abc': expected a time with a unit"),
    (["--wan", "delay=-5ms"], "--wan 'delay=-5ms': delay '-5ms': must not be negative"),
    (["--wan", "loss=150%"], "--wan 'loss=150%': loss '150%': must be between 0 and 100%"),
    (["--wan", "3:delay=5ms"], "--wan '3:delay=5ms': endpoint 3 does not exist"),
    (["--wan", "rate=0mbit"], "--wan 'rate=0mbit': rate '0mbit': expected a positive tc rate"),
    (["--wan", "foo=1"], "--wan 'foo=1': unknown key 'foo'"),
    (["--wan", "delay"], "--wan 'delay': 'delay': expected"),
    (["--pings", "0"], "--pings 0: expected at least 1"),
    (["--pings", "-3"], "--pings -3: expected at least 1"),
    (["--size", "-1"], "--size -1: expected a number of bytes from 0"),
    (["--datagrams", "-5"], "--datagrams -5: expected a number ≥ 0")])
def test_wan_probe_refuses_a_bad_flag_in_one_message_before_setting_up(args, message,
                                                                       monkeypatch, capsys):
    from splitnet.ops import wan_probe

    monkeypatch.setattr(wan_probe, "measure", lambda *a, **k: pytest.fail("it measured"))
    assert wan_probe.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_wan_probe_says_why_this_machine_cannot_emulate_a_wan(monkeypatch, capsys):
    from splitnet.ops import wan_probe

    monkeypatch.setattr(wan_probe, "wan_unavailable", lambda: "WAN emulation needs root")
    monkeypatch.setattr(wan_probe, "measure", lambda *a, **k: pytest.fail("it measured"))
    assert wan_probe.main(["--wan", "delay=5ms"]) == 2
    assert capsys.readouterr().err == "python -m splitnet.ops.wan_probe: WAN emulation needs root\n"


def test_wan_probe_help_gives_each_flag_and_its_default(capsys):
    from splitnet.ops import wan_probe

    with pytest.raises(SystemExit):
        wan_probe.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--wan SPEC" in out and "(default 30)" in out and "(default 2000; 0: none)" in out
    assert "200 MB without one" in out
