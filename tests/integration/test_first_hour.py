"""A student's first hour (issue 17), against the real lab: runs kept per lab, and the
tasks' own words."""

from __future__ import annotations

import json
import subprocess

from lab import lifecycle, paths, runs
from lab.traffic import loadtest

FAB = str(paths.VENV / "bin" / "fab")


def fab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([FAB, *args], cwd=paths.ROOT, capture_output=True, text=True,
                          timeout=timeout, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                                "COLUMNS": "200", "LANG": "C.UTF-8"})


def test_runs_are_named_kept_per_lab_and_never_shown_as_a_later_labs(lab, lab_manager):
    result, stem = loadtest.run(lab, loadtest.Options(
        label="first-hour", requests=60, concurrency=4, capture=False, quiet=True))
    assert stem.name == f"{result['started']}-first-hour-leases"
    assert json.loads(stem.with_suffix(".json").read_text())["lab"] == \
        runs.lab_identity(lab)
    shown = fab("stats")
    assert shown.returncode == 0, shown.stderr
    assert "the last loadtest: first-hour" in shown.stdout
    listed = fab("runs").stdout
    row = next(line for line in listed.splitlines() if stem.name in line)
    assert "this" in row

    lifecycle.up(lab.topo, cache_mode="leases", say=lambda *a, **k: None, test_hooks=True)
    shown = fab("stats")
    assert shown.returncode == 0, shown.stderr
    assert "the last loadtest" not in shown.stdout
    assert "no loadtest on this lab yet" in shown.stdout
    row = next(line for line in fab("runs").stdout.splitlines() if stem.name in line)
    assert "earlier" in row
    for path in runs.find(paths.CAPTURES, stem.name).files():
        path.unlink()


def test_a_node_without_memcached_that_still_serves_is_degraded(lab):
    from lab import control

    try:
        assert "stopped" in control.stop(lab, "app2", "memcached")
        shown = fab("status", "--json")
        assert shown.returncode == 0, shown.stdout + shown.stderr  # degraded is not down
        report = json.loads(shown.stdout)
        app2 = next(n for n in report["nodes"] if n["name"] == "app2")
        assert (report["state"], app2["state"]) == ("degraded", "degraded")
        assert app2["service_states"] == {"apache": "up", "memcached": "down"}
        assert all(n["state"] == "healthy" for n in report["nodes"] if n["name"] != "app2")
        table = fab("status").stdout
        assert "degraded: app2 serve every page" in " ".join(table.split())
    finally:
        control.start(lab, "app2", "memcached")
    assert json.loads(fab("status", "--json").stdout)["state"] == "healthy"


def test_the_shell_prompt_names_the_node(lab, tmp_path):
    (tmp_path / ".bashrc").write_text("PS1='root@vm:\\w# '\n")
    shown = subprocess.run([FAB, "shell", "client"], cwd=paths.ROOT, input="hostname -I\n",
                           capture_output=True, text=True, timeout=60,
                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path)})
    assert "[lab:client] root@vm:" in shown.stderr
    assert lab.topo.client.address in shown.stdout


def test_with_the_lab_down_or_half_built_tasks_say_so_once(lab_manager):
    import os
    import signal
    import time

    lab_manager.forget()
    lifecycle.down(say=lambda *a, **k: None)
    for task in (["status"], ["stats"], ["demo"], ["loadtest", "--requests", "5"],
                 ["shell", "client"], ["stop", "app2", "memcached"]):
        shown = fab(*task)
        assert shown.returncode == 1, (task, shown.stdout, shown.stderr)
        assert shown.stderr.strip() == "error: the lab is not up: run fab up", task
        assert shown.stdout == "", task

    # A real fab up, interrupted by Ctrl-C (SIGINT to its process group) once provisioning
    # has started.
    up = subprocess.Popen([FAB, "up"], cwd=paths.ROOT, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    for line in up.stdout:
        if line.startswith("network:"):
            break
    time.sleep(1.0)
    os.killpg(up.pid, signal.SIGINT)
    out, err = up.communicate(timeout=60)
    assert up.returncode == 130, (out, err)
    assert "Traceback" not in out + err
    assert err.strip().splitlines()[-1].startswith("fab up interrupted")
    shown = fab("status")
    assert (shown.returncode, shown.stderr.strip()) == (
        1, "error: the last fab up was interrupted: run fab up again")
    rebuilt = fab("up", timeout=300)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert fab("status").returncode == 0
    again = fab("up", timeout=300)
    assert "a lab is running: fab up rebuilds it from nothing" in " ".join(again.stdout.split())
    lab_manager.forget()


def test_demo_prints_requests_a_student_can_repeat(lab):
    shown = fab("demo")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    lines = [line.split("$ ", 1)[1] for line in shown.stdout.splitlines()
             if line.strip().startswith("[lab:client] $ curl")]
    assert len(lines) == 4  # the rotation's request, the write, the two reads
    rotation = lab.run(lab.topo.client, ["bash", "-c", lines[0]])
    assert rotation.stdout.strip() in {app.name for app in lab.topo.apps}
    read = lab.run(lab.topo.client, ["bash", "-c", lines[2]])
    assert "x-cache:" in read.stdout.lower() and "x-served-by:" in read.stdout.lower()


def test_start_says_when_the_daemon_already_runs(lab):
    shown = fab("start", "app2", "memcached")
    assert shown.returncode == 0, shown.stderr
    assert "memcached on app2 is already running (pid " in shown.stdout
