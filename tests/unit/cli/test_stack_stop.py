"""Stopping the local stack leaves no process behind, even when a service ignores SIGTERM (issue 8, item 12)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gyre_cli.stack import LocalStack
from tests.support.nats_server import find_nats_server, free_port

# A service wedged the way a stalled ingest was: it ignores SIGTERM, and it has a worker process of its
# own (in its process group) that ignores it too. It writes both pids to a file, then spins.
WEDGED_SERVICE = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    worker = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    with open(sys.argv[1], "w") as f:
        f.write(f"{os.getpid()} {worker.pid}")
    while True:
        time.sleep(0.1)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def wait_for_pids(path: Path) -> list[int]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return [int(p) for p in path.read_text().split()]
        time.sleep(0.05)
    raise AssertionError("the wedged service did not start")


def spawn_wedged_stack(tmp_path: Path) -> tuple[LocalStack, list[int]]:
    stack = LocalStack(data_dir=tmp_path)
    pids_file = tmp_path / "ingest.pids"
    script = tmp_path / "wedged.py"
    script.write_text(WEDGED_SERVICE)
    port, monitor = free_port(), free_port()
    stack._spawn(
        "nats-server",
        [str(find_nats_server()), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor)],
        dict(os.environ),
    )
    stack._spawn("ingest", [sys.executable, str(script), str(pids_file)], dict(os.environ))
    pids = [stack.processes["nats-server"].pid, *wait_for_pids(pids_file)]
    return stack, pids


@pytest.mark.timeout(60)
def test_stop_kills_a_service_that_ignores_sigterm_and_its_workers(tmp_path: Path) -> None:
    stack, pids = spawn_wedged_stack(tmp_path)
    assert all(alive(pid) for pid in pids)

    stack.stop(grace_s=1.0)

    assert [pid for pid in pids if alive(pid)] == []
    assert stack.processes == {}


STOPPER = textwrap.dedent(
    """
    import signal, sys
    from pathlib import Path
    from tests.unit.cli.test_stack_stop import spawn_wedged_stack
    stack, pids = spawn_wedged_stack(Path(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(" ".join(map(str, pids)), flush=True)
        input()  # the test's first Ctrl-C interrupts this, as it interrupts `gyre up`'s wait
    except KeyboardInterrupt:
        pass
    try:
        print("stopping", flush=True)
        stack.stop(grace_s=300.0)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)


@pytest.mark.timeout(90)
def test_a_second_ctrl_c_while_stopping_kills_everything_at_once(tmp_path: Path) -> None:
    root = str(Path(__file__).resolve().parents[3])
    stopper = subprocess.Popen(
        [sys.executable, "-c", STOPPER, str(tmp_path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=root,
    )
    assert stopper.stdout is not None
    pids = [int(p) for p in stopper.stdout.readline().split()]
    assert len(pids) == 3 and all(alive(pid) for pid in pids)

    stopper.send_signal(signal.SIGINT)
    assert stopper.stdout.readline().strip() == "stopping"
    time.sleep(0.5)  # let stop() send SIGTERM and start waiting out its 300 s grace period
    stopper.send_signal(signal.SIGINT)

    try:
        out, _ = stopper.communicate(timeout=60)
        assert "interrupted" in out
        assert [pid for pid in pids if alive(pid)] == []
    finally:  # never leave the wedged processes behind, whatever failed
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
