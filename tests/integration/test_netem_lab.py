"""fab netem on the real lab: the delay shows in page latency and in ping round trips, it
goes away with --clear, and fab down leaves no delayer process and no rule behind.

On a kernel with netem this exercises tc netem; on one without (this lab's VMs and CI) the
userspace delayer of lab/netem.py. Either way the round trips must grow by the delay."""

from __future__ import annotations

import re
from pathlib import Path

from lab import control, lifecycle, netem, netns, paths
from lab.probing import probe

DELAY = 25  # ms


def median_page_ms(lab) -> float:
    url = f"http://{lab.topo.balancer.address}:{lab.topo.ports.http}/nocache/products/3/"
    times = sorted(r["ms"] for r in probe(lab, lab.topo.client, "http", *[url] * 9))
    return times[len(times) // 2]


def ping_ms(lab, count: int = 20) -> float:
    """The mean round trip from app1 to db, from inside the lab."""
    done = lab.run(lab.topo.apps[0], ["ping", "-q", "-n", "-c", str(count), "-i", "0.05",
                                      lab.topo.db.address])
    assert done.returncode == 0, done.stderr
    return float(re.search(r"= [\d.]+/([\d.]+)/", done.stdout).group(1))


def delay_rules(lab) -> list[str]:
    """The delayer's rules in db's namespace, made by either iptables."""
    saved = "".join(lab.run(lab.topo.db, [tool]).stdout
                    for tool in ("iptables-save", "iptables-legacy-save"))
    return [line for line in saved.splitlines() if netem.RULE_COMMENT in line]


def delayer_pid(lab) -> int | None:
    return netem.read_pid(paths.NODES / lab.topo.db.name / "run" / netem.PIDFILE)


def delayers_anywhere() -> list[int]:
    """Every 'python -m lab.netem serve' on this machine."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        if netem.is_delayer(int(proc.name)):
            found.append(int(proc.name))
    return found


def test_the_delay_slows_uncached_pages_and_clears(lab):
    base = median_page_ms(lab)
    try:
        said = control.netem(lab, "db", DELAY)
        assert "(tc netem)" in said or "userspace delayer" in said, said
        slowed = median_page_ms(lab)
    finally:
        control.netem(lab, "db", None)
    cleared = median_page_ms(lab)
    assert slowed - base >= DELAY, (base, slowed)  # at least one query's round trip
    assert cleared < slowed - DELAY + 5, (slowed, cleared)


def test_a_ping_to_db_takes_the_delay_longer(lab):
    base = ping_ms(lab)
    try:
        control.netem(lab, "db", 10)
        added = ping_ms(lab) - base
    finally:
        control.netem(lab, "db", None)
    assert 9.7 <= added <= 11.0, added
    assert ping_ms(lab) < base + 1


def test_a_new_delay_replaces_the_old_one(lab):
    try:
        first = control.netem(lab, "db", 30)
        old = delayer_pid(lab)
        control.netem(lab, "db", 5)
        new = delayer_pid(lab)
        rtt = ping_ms(lab, count=10)
        if "userspace delayer" in first:
            assert old != new and not netem.is_delayer(old)
            assert len(delay_rules(lab)) == 1
        assert 4.9 <= rtt < 6.5, rtt
    finally:
        control.netem(lab, "db", None)


def test_clear_leaves_no_rule_no_delayer_no_qdisc(lab):
    said = control.netem(lab, "db", DELAY)
    pid = delayer_pid(lab)
    assert control.netem(lab, "db", None).startswith("db: no added delay (removed: ")
    assert delay_rules(lab) == []
    assert delayer_pid(lab) is None
    if "userspace delayer" in said:
        assert pid is not None and not netem.is_delayer(pid)
    qdisc = lab.run(lab.topo.db, ["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert "netem" not in qdisc
    assert "no added delay (removed: nothing, none was set)" in control.netem(lab, "db", None)


def test_fab_down_leaves_no_delayer_and_no_rule(lab_manager, lab):
    said = control.netem(lab, "db", DELAY)
    pid = delayer_pid(lab)
    if "userspace delayer" in said:
        assert pid in netns.pids_in(lab.topo.db.namespace)
    lifecycle.down(say=lambda *a, **k: None)
    lab_manager.forget()
    assert lab.topo.db.namespace not in netns.namespaces()  # its rules went with it
    assert delayers_anywhere() == []
    assert not paths.STATE.exists()
