"""The local stack: nats-server and the seven Gyre processes on one machine, started and stopped together."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from gyre_cli.hub_seed import register_default_models
from gyre_runtime.bus import connection as bus_connection
from gyre_runtime.bus.credentials import (
    Credential,
    credential_path,
    default_credentials_dir,
    ensure_stack_credentials,
    write_authorization,
)
from gyre_runtime.bus.permissions import ADMIN, Naming
from gyre_runtime.config import DEFAULT_PORTS, load_settings
from gyre_runtime.service import port_is_free

SERVICES = ("ingest", "embed", "generate", "feedback", "improve", "evaluate", "monitor", "gateway")
HOST = "127.0.0.1"
NATS_MAX_PAYLOAD = 16 * 1024 * 1024


class StackError(RuntimeError):
    """The stack could not start; the message says why and what to do."""


def find_executable(name: str) -> str:
    """A console script of this environment (next to the interpreter), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found: install the project first (`just setup`)")
    return found


def ensure_api_key(data_dir: Path) -> str:
    """The local key for tenant `default`, created on first run and kept in `<data_dir>/api-key`."""
    path = data_dir / "api-key"
    if path.exists():
        return path.read_text().strip().split(":", 1)[0]
    key = "gyre-" + secrets.token_urlsafe(24)
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


@dataclass
class LocalStack:
    data_dir: Path
    model_dir: Path | None = None
    nats_port: int = 4222
    nats_monitor_port: int = 8222
    ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # NATS servers the stack does not own (a cluster): the services connect to all of them and the
    # stack starts no nats-server of its own; ``stream_replicas`` is then typically 3.
    external_nats_urls: tuple[str, ...] = ()
    stream_replicas: int = 1
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _launch_env: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    _credentials: dict[str, Credential] = field(default_factory=dict, repr=False)

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.ports['gateway']}"

    @property
    def services_nats_url(self) -> str:
        """What the services get as GYRE_NATS_URL: the stack's own server, or every external one, comma separated.

        Without credentials: each service connects with its own (GYRE_NATS_CREDENTIALS_FILE).
        """
        if self.external_nats_urls:
            return ",".join(self.external_nats_urls)
        return f"nats://{HOST}:{self.nats_port}"

    @property
    def nats_url(self) -> str:
        """The operator's URL: the same servers with the admin credential in it (``nats://admin:...@host``).

        What tools and tests that watch or drive the bus connect with (``nats.connect(stack.nats_url)``,
        ``GYRE_NATS_URL`` of a `gyre` command); the bus accepts no connection without a credential.
        """
        admin = self.credentials[ADMIN]
        return ",".join(
            _with_user(url, admin.user, admin.password) for url in self.services_nats_url.split(",")
        )

    @property
    def credentials_dir(self) -> Path:
        return default_credentials_dir(self.data_dir)

    @property
    def credentials(self) -> dict[str, Credential]:
        """The admin's and every service's NATS credential: created on first use, kept across runs."""
        if not self._credentials:
            self._credentials = ensure_stack_credentials(self.credentials_dir)
        return self._credentials

    def url_of(self, service: str) -> str:
        return f"http://{HOST}:{self.ports[service]}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def check_ports(self) -> None:
        wanted = dict(self.ports)
        if not self.external_nats_urls:
            wanted = {"nats": self.nats_port, "nats monitor": self.nats_monitor_port, **wanted}
        busy = [f"{name} ({port})" for name, port in wanted.items() if not port_is_free(HOST, port)]
        if busy:
            raise StackError(
                "ports already in use: " + ", ".join(busy)
                + ". Stop whatever holds them (another `just up`?) or choose other ports "
                "(GYRE_GATEWAY_PORT, GYRE_NATS_PORT, GYRE_PORT_BASE)."
            )

    def env_for(self, service: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GYRE_")}
        env.update({k: v for k, v in os.environ.items() if k.startswith("GYRE_") and k not in _STACK_OWNED})
        env.update(
            GYRE_DATA_DIR=str(self.data_dir),
            GYRE_NATS_URL=self.services_nats_url,
            GYRE_HTTP_HOST=HOST,
            GYRE_HTTP_PORT=str(self.ports[service]),
            # Its own NATS user, whose permissions do not include creating streams: the stack declares
            # the topology with the admin credential before any service starts.
            GYRE_NATS_CREDENTIALS_FILE=str(credential_path(self.credentials_dir, service)),
            GYRE_DECLARE_TOPOLOGY="false",
        )
        if self.model_dir:
            env["GYRE_MODEL_DIR"] = str(self.model_dir)
        if self.stream_replicas != 1:
            env["GYRE_STREAM_REPLICAS"] = str(self.stream_replicas)
        env.update(self.extra_env)
        return env

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        # Own session: Ctrl-C reaches only us, and we stop the children in order.
        self.processes[name] = subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self._launch_env[name] = env  # what restart() starts it with again

    def kill(self, service: str, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> int:
        """Send ``sig`` to one process of the stack (a service or ``nats-server``), wait for it to exit.

        Returns its exit status (``-sig`` for a process the signal ended). The process stays in
        ``processes``, so ``restart`` can start it again; ``stop`` skips it while it is down.
        """
        process = self._process(service)
        if process.poll() is None:
            process.send_signal(sig)
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise StackError(
                f"{service} (pid {process.pid}) did not exit within {timeout_s:.0f} s of signal {sig}"
            ) from exc

    def restart(self, service: str, timeout_s: float = 120.0, *, env: Mapping[str, str] | None = None) -> None:
        """Start one process again with the command and environment it was first started with.

        ``env`` replaces that environment from now on (also for later restarts): e.g. to change a
        setting of one running service.

        A process still running is stopped first (SIGTERM, then SIGKILL after 20 s). Waits for the
        service's ``/readyz`` (nats-server: its JetStream health check); its log continues in the
        same file.
        """
        process = self._process(service)
        if process.poll() is None:
            try:
                self.kill(service, signal.SIGTERM, timeout_s=20.0)
            except StackError:
                self.kill(service, signal.SIGKILL)
        argv = [str(a) for a in process.args] if isinstance(process.args, list | tuple) else [str(process.args)]
        if env is not None:
            self._launch_env[service] = dict(env)
        self._spawn(service, argv, self._launch_env[service])
        self._wait_http(service, self._ready_url(service), timeout_s, refusal_is_final=service != "nats-server")

    def launch_env(self, service: str) -> dict[str, str]:
        """A copy of the environment ``service`` runs with."""
        self._process(service)
        return dict(self._launch_env[service])

    def _process(self, name: str) -> subprocess.Popen[bytes]:
        if name not in self.processes or name not in self._launch_env:
            raise StackError(f"{name} is not a process of this running stack (known: {', '.join(self.processes)})")
        return self.processes[name]

    def _ready_url(self, name: str) -> str:
        if name == "nats-server":
            return f"http://{HOST}:{self.nats_monitor_port}/healthz?js-enabled-only=true"
        return f"{self.url_of(name)}/readyz"

    def start(self, timeout_s: float = 300.0) -> None:
        self.check_ports()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.external_nats_urls:
            nats_argv = [find_executable("nats-server"), "-c", str(self.write_nats_config())]
            self._spawn("nats-server", nats_argv, dict(os.environ))
            # nats-server's health answers 500 for its first milliseconds ("not ready for connections"): wait on.
            self._wait_http("nats-server", self._ready_url("nats-server"), 30, refusal_is_final=False)
        self.declare_topology()
        for service in SERVICES:
            self._spawn(service, [find_executable(f"gyre-{service}")], self.env_for(service))
        deadline = time.monotonic() + timeout_s
        for service in SERVICES:
            self._wait_http(service, f"{self.url_of(service)}/readyz", max(1.0, deadline - time.monotonic()))

    def write_nats_config(self) -> Path:
        """The server's config: JetStream under the data dir, room for large documents, and the users.

        NATS refuses messages over ``max_payload`` (1 MiB by default); documents travel base64
        encoded inside DocumentSubmitted, so the local stack allows 16 MiB. The users (bcrypt hashes
        and permissions of the admin and each service, and of any publisher added with `gyre bus
        credentials add-publisher`) are in ``nats-auth.conf`` beside it; there is no anonymous user.
        The pid file lets `gyre bus credentials add-publisher` make the running server reload them.
        """
        naming = Naming(load_settings(self.env_for("gateway")).subject_prefix)
        self.credentials  # noqa: B018 (created on the first run, kept afterwards)
        auth = write_authorization(self.credentials_dir, self.data_dir / "nats-auth.conf", naming)
        path = self.data_dir / "nats-server.conf"
        path.write_text(
            f'listen: "{HOST}:{self.nats_port}"\n'
            f'http: "{HOST}:{self.nats_monitor_port}"\n'
            f"max_payload: {NATS_MAX_PAYLOAD}\n"
            f'pid_file: "{self.data_dir / "nats-server.pid"}"\n'
            f'jetstream {{\n  store_dir: "{self.data_dir / "nats"}"\n}}\n'
            f'include "{auth.name}"\n'
        )
        return path

    def declare_topology(self) -> None:
        """Streams, durable consumers and buckets, declared with the admin credential (services may not);
        then the model store's default models registered in the hub (gyre_cli.hub_seed)."""
        settings = load_settings(
            self.env_for("gateway"), nats_url=self.nats_url, nats_credentials_file="", declare_topology=True
        )

        async def declare() -> None:
            bus = await bus_connection.connect(settings, name="gyre-up", patient=False)
            try:
                await bus_connection.declare_topology(bus)
                await register_default_models(bus, settings)
            finally:
                await bus.close()

        # Its own thread and event loop: start() may be called from code that runs one already.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            try:
                pool.submit(asyncio.run, declare()).result()
            except (ConnectionError, OSError) as exc:
                raise StackError(f"cannot declare the bus topology: {exc}") from exc

    def _wait_http(self, name: str, url: str, timeout_s: float, *, refusal_is_final: bool = True) -> None:
        """Until ``url`` answers 200. A Gyre service whose start failed for good says so (``error`` in
        its /readyz body, or a 500): that ends the wait at once when ``refusal_is_final``."""
        deadline = time.monotonic() + timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                raise StackError(f"{name} exited with code {process.returncode}:\n{self.log_tail(name)}")
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:300]}"
                if refusal_is_final and (response.status_code == 500 or '"error"' in response.text):
                    raise StackError(f"{name} failed to start: {response.text}\n{self.log_tail(name)}")
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise StackError(f"{name} was not ready within {timeout_s:.0f} s (last answer: {last}):\n{self.log_tail(name)}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, grace_s: float = 15.0) -> None:
        """Stop every process and leave nothing behind, however wedged a service is.

        SIGTERM the services (gateway first) and give them ``grace_s`` together to finish, then
        nats-server the same; whatever is still running then gets SIGKILL, with its whole process
        group (a service's own worker processes included). A second Ctrl-C while waiting skips the
        rest of the grace period: everything is killed at once, and the interrupt is re-raised.
        """
        order = [s for s in reversed(SERVICES) if s in self.processes]
        try:
            for group in (order, ["nats-server"] if "nats-server" in self.processes else []):
                self._terminate(group, grace_s)
        finally:
            self._kill_all()
            self.processes.clear()

    def _terminate(self, names: list[str], grace_s: float) -> None:
        running = [name for name in names if self.processes[name].poll() is None]
        for name in running:
            self.processes[name].send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for name in running:
            try:
                self.processes[name].wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log_line = f"{name} did not stop within {grace_s:.0f} s of SIGTERM: killing it"
                print(log_line, file=sys.stderr, flush=True)
                self._kill_group(self.processes[name])

    def _kill_all(self) -> None:
        for process in self.processes.values():
            self._kill_group(process)

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes]) -> None:
        """SIGKILL a process and its process group (each is started in its own session), then reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Set per process by the stack; a user's value for these would point a service at the wrong place.
_STACK_OWNED = {
    "GYRE_DATA_DIR", "GYRE_NATS_URL", "GYRE_HTTP_HOST", "GYRE_HTTP_PORT", "GYRE_MODEL_DIR",
    "GYRE_NATS_CREDENTIALS_FILE", "GYRE_NATS_INBOX_PREFIX", "GYRE_DECLARE_TOPOLOGY",
}


def _with_user(url: str, user: str, password: str) -> str:
    """``nats://host:4222`` -> ``nats://user:password@host:4222`` (passwords are URL-safe tokens)."""
    parts = urlsplit(url.strip())
    netloc = f"{user}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
