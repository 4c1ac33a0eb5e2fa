"""`gyre up`: starts everything, prints URL and key, stops cleanly on Ctrl-C, reuses its data, refuses busy ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.models import REPO, built_models
from tests.support.nats_server import free_port

pytestmark = pytest.mark.e2e
GYRE = str(Path(sys.executable).parent / "gyre")


def stack_env(data_dir: Path, gateway: int, nats_port: int, base: int) -> dict[str, str]:
    return {
        **os.environ,
        "GYRE_DATA_DIR": str(data_dir),
        "GYRE_MODEL_DIR": str(built_models()),
        "GYRE_GATEWAY_PORT": str(gateway),
        "GYRE_NATS_PORT": str(nats_port),
        "GYRE_NATS_MONITOR_PORT": str(free_port()),
        "GYRE_PORT_BASE": str(base),
    }


def free_block(size: int = 8) -> int:
    """A base port whose next ``size`` ports are free now."""
    for _ in range(50):
        base = free_port()
        if base + size > 65000:
            continue
        ports = []
        try:
            for port in range(base + 1, base + size):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                ports.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in ports:
                sock.close()
    raise RuntimeError("no free block of ports")


def start_up(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    process = subprocess.Popen(
        [GYRE, "up", *args], env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    assert process.stdout is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("Ctrl-C stops everything"):
            return process, lines
    process.kill()
    pytest.fail("gyre up did not come up:\n" + "\n".join(lines))


def stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=60)
    return out


def test_gyre_up_serves_stops_on_ctrl_c_and_reuses_its_data(tmp_path: Path) -> None:
    gateway, nats_port, base = free_port(), free_port(), free_block()
    env = stack_env(tmp_path, gateway, nats_port, base)
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "a.md").write_text("# Teal\n\nThe Ormond tower is painted teal.")
    process, lines = start_up(env, "--samples", str(samples))
    text = "\n".join(lines)
    key = (tmp_path / "api-key").read_text().strip()
    assert f"http://127.0.0.1:{gateway}" in text and key in text and "curl" in text
    assert "sample documents: 1 of 1 indexed" in text
    out = stop(process)
    assert process.returncode == 0 and "stopped" in out

    process, _ = start_up(env)  # the same data dir: same key, documents still there
    try:
        assert (tmp_path / "api-key").read_text().strip() == key
        hits = httpx.post(f"http://127.0.0.1:{gateway}/v1/search", json={"query": "Ormond tower colour"},
                          headers={"Authorization": f"Bearer {key}"}, timeout=60).json()["hits"]
        assert hits and hits[0]["document_id"] == "sample/a.md"
    finally:
        stop(process)


def test_gyre_up_names_the_busy_port(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        gateway = busy.getsockname()[1]
        env = stack_env(tmp_path, gateway, free_port(), free_block())
        result = subprocess.run([GYRE, "up"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"gateway ({gateway})" in result.stderr and "ports already in use" in result.stderr
