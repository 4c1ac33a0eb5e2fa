"""A real 3-node NATS JetStream cluster on loopback, for tests that kill and restart its nodes."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from gyre_cli.stack import NATS_MAX_PAYLOAD
from tests.support.nats_server import NatsServerError, find_nats_server

HOST = "127.0.0.1"


class NatsClusterError(NatsServerError):
    """A node did not start, or the cluster did not elect its leaders in time; the message says which."""


@dataclass
class ClusterNode:
    """One ``nats-server`` of the cluster: its name, ports and store, kept across restarts."""

    name: str
    port: int
    monitor_port: int
    cluster_port: int
    root: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{HOST}:{self.monitor_port}"

    @property
    def store_dir(self) -> Path:
        return self.root / "jetstream"

    @property
    def config_path(self) -> Path:
        return self.root / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "nats-server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def node_config(node: ClusterNode, peers: list[ClusterNode], *, cluster_name: str, include: Path | None) -> str:
    """The node's config file: client, monitor and route ports on loopback, JetStream, routes to every peer."""
    routes = "\n".join(f'    "nats-route://{HOST}:{peer.cluster_port}"' for peer in peers)
    lines = [
        f"server_name: {node.name}",
        f'listen: "{HOST}:{node.port}"',
        f'http: "{HOST}:{node.monitor_port}"',
        # As the local stack: documents travel base64 encoded in events, more than the 1 MiB default.
        f"max_payload: {NATS_MAX_PAYLOAD}",
        f'jetstream {{\n  store_dir: "{node.store_dir}"\n}}',
        "cluster {",
        f"  name: {cluster_name}",
        f'  listen: "{HOST}:{node.cluster_port}"',
        f"  routes: [\n{routes}\n  ]",
        "}",
    ]
    if include is not None:
        # nats-server resolves an include relative to the including file, even an absolute path:
        # the file is copied beside the node's config (start() does) and included by its name.
        lines.append(f'include "{include.name}"')
    return "\n".join(lines) + "\n"


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports the OS says are free right now (all bound at once, then released)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def get_json(url: str, timeout_s: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def answers_ok(url: str) -> bool:
    with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
        with urllib.request.urlopen(url, timeout=2.0) as response:
            return bool(response.status == 200)
    return False


class NatsCluster:
    """Three (``size``) ``nats-server -js`` processes joined in one cluster, each with its own store.

    ``start()`` returns once every node answers JetStream-healthy and the cluster has a meta
    leader. ``kill(name)`` (SIGKILL by default) and ``start_node(name)`` take one node down and
    bring it back on the same ports with the same store; ``wait_current(name)`` waits until it has
    caught up (its ``/healthz`` checks that every stream and consumer it hosts is current).
    ``include`` names a config file every node includes (e.g. an ``authorization`` block).
    """

    def __init__(
        self,
        *,
        size: int = 3,
        root: Path | None = None,
        cluster_name: str = "gyre",
        include: Path | None = None,
        binary: Path | None = None,
        start_timeout_s: float = 30.0,
    ) -> None:
        self._owns_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="gyre-nats-cluster-")) if root is None else root
        self.cluster_name = cluster_name
        self.include = include
        self.binary = binary or find_nats_server()
        self.start_timeout_s = start_timeout_s
        self.nodes = [ClusterNode(f"n{i + 1}", 0, 0, 0, self.root / f"n{i + 1}") for i in range(size)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> ClusterNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} (nodes: {', '.join(n.name for n in self.nodes)})")

    def running_nodes(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.running]

    # ------------------------------------------------------------ life cycle

    def start(self) -> NatsCluster:
        """Start every node on new free ports; a port taken before a node bound it means a fresh try."""
        for attempt in range(3):
            ports = iter(free_ports(3 * len(self.nodes)))
            for node in self.nodes:
                node.port, node.monitor_port, node.cluster_port = next(ports), next(ports), next(ports)
                node.root.mkdir(parents=True, exist_ok=True)
                if self.include is not None:
                    shutil.copyfile(self.include, node.config_path.parent / self.include.name)
                node.config_path.write_text(
                    node_config(node, self.nodes, cluster_name=self.cluster_name, include=self.include)
                )
            for node in self.nodes:
                self._spawn(node)
            try:
                for node in self.nodes:
                    self._wait_healthy(node, self.start_timeout_s)
            except NatsClusterError as exc:
                self._stop_nodes()
                if "address already in use" not in str(exc) or attempt == 2:
                    raise
                for node in self.nodes:  # a fresh start: no half-formed cluster state
                    shutil.rmtree(node.store_dir, ignore_errors=True)
                continue
            self.wait_meta_leader(self.start_timeout_s)
            return self
        raise AssertionError("unreachable")

    def _spawn(self, node: ClusterNode) -> None:
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                [str(self.binary), "-c", str(node.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )

    def _wait_healthy(self, node: ClusterNode, timeout_s: float, *, current: bool = False) -> None:
        """JetStream enabled on the node; with ``current``, also every stream and consumer it hosts caught up."""
        url = f"{node.monitor_url}/healthz" + ("" if current else "?js-enabled-only=true")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not node.running:
                raise NatsClusterError(f"node {node.name} exited:\n{node.log_tail()}")
            if answers_ok(url):
                return
            time.sleep(0.1)
        what = "caught up" if current else "JetStream-healthy"
        raise NatsClusterError(f"node {node.name} was not {what} within {timeout_s:.0f} s:\n{node.log_tail()}")

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> int:
        """Send ``sig`` to one node and wait for it to exit; its exit status (``-sig`` when the signal ended it)."""
        node = self.node(name)
        if node.process is None:
            raise NatsClusterError(f"node {name} was never started")
        if node.process.poll() is None:
            node.process.send_signal(sig)
        try:
            return node.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise NatsClusterError(f"node {name} did not exit within {timeout_s:.0f} s of signal {sig}") from exc

    def start_node(self, name: str, timeout_s: float | None = None) -> None:
        """Start a stopped node again (same ports, same store); returns once its JetStream is enabled."""
        node = self.node(name)
        if node.running:
            return
        self._spawn(node)
        self._wait_healthy(node, timeout_s or self.start_timeout_s)

    def restart(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 120.0) -> None:
        """Stop one node with ``sig``, start it again, wait until it has caught up with the cluster."""
        self.kill(name, sig)
        self.start_node(name)
        self.wait_current(name, timeout_s)

    def wait_current(self, name: str, timeout_s: float = 120.0) -> None:
        """Until the node is back in the cluster with every stream and consumer it hosts caught up."""
        self._wait_healthy(self.node(name), timeout_s, current=True)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every node (SIGKILL what does not stop); removes the store if the cluster made it."""
        self._stop_nodes(timeout_s)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def _stop_nodes(self, timeout_s: float = 20.0) -> None:
        for node in self.nodes:
            if node.running and node.process is not None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()

    def __enter__(self) -> NatsCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ leaders (from the monitoring endpoints)

    def jsz(self, node: ClusterNode, query: str = "") -> dict[str, Any]:
        body: dict[str, Any] = get_json(f"{node.monitor_url}/jsz{query}")
        return body

    def meta_leader(self) -> str | None:
        """The meta leader as a running node sees it, if any running node knows one among the running nodes."""
        running = {node.name for node in self.running_nodes()}
        for node in self.running_nodes():
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                leader = self.jsz(node).get("meta_cluster", {}).get("leader")
                if leader in running:
                    return str(leader)
        return None

    def wait_meta_leader(self, timeout_s: float = 30.0) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.meta_leader()
            if leader is not None:
                return leader
            time.sleep(0.1)
        raise NatsClusterError(f"no JetStream meta leader among the running nodes within {timeout_s:.0f} s")

    def stream_leaders(self) -> dict[str, str]:
        """Stream name -> its leader (a running node), for every stream some running node hosts."""
        running = {node.name for node in self.running_nodes()}
        leaders: dict[str, str] = {}
        for node in self.running_nodes():
            with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
                for account in self.jsz(node, "?accounts=true&streams=true").get("account_details", []):
                    for stream in account.get("stream_detail") or []:
                        leader = (stream.get("cluster") or {}).get("leader")
                        if leader in running:
                            leaders[stream["name"]] = str(leader)
        return leaders

    def wait_stream_leaders(self, streams: list[str], timeout_s: float = 60.0) -> dict[str, str]:
        """Until every named stream has a leader among the running nodes; returns name -> leader."""
        deadline = time.monotonic() + timeout_s
        leaders: dict[str, str] = {}
        while time.monotonic() < deadline:
            leaders = self.stream_leaders()
            if all(name in leaders for name in streams):
                return {name: leaders[name] for name in streams}
            time.sleep(0.1)
        missing = [name for name in streams if name not in leaders]
        raise NatsClusterError(f"streams without a leader after {timeout_s:.0f} s: {missing}")

    def local_stream_messages(self, name: str, stream: str) -> int:
        """How many messages the node's own replica of ``stream`` holds, as the node reports it."""
        for account in self.jsz(self.node(name), "?accounts=true&streams=true").get("account_details", []):
            for detail in account.get("stream_detail") or []:
                if detail["name"] == stream:
                    return int(detail["state"]["messages"])
        raise NatsClusterError(f"node {name} hosts no stream {stream}")
