"""The local stack against NATS servers it does not own (a cluster): what services are told, which ports it needs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from gyre_cli.stack import LocalStack, StackError
from tests.support.nats_server import free_port

CLUSTER = ("nats://127.0.0.1:14222", "nats://127.0.0.1:14223", "nats://127.0.0.1:14224")


def test_services_connect_to_every_node_of_an_external_cluster_with_three_replicas(tmp_path: Path) -> None:
    stack = LocalStack(data_dir=tmp_path, external_nats_urls=CLUSTER, stream_replicas=3)

    env = stack.env_for("embed")

    assert env["GYRE_NATS_URL"] == ",".join(CLUSTER)
    assert env["GYRE_STREAM_REPLICAS"] == "3"


def test_a_stack_with_its_own_server_leaves_the_replica_count_to_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GYRE_STREAM_REPLICAS", raising=False)
    stack = LocalStack(data_dir=tmp_path, nats_port=4333)

    env = stack.env_for("embed")

    assert env["GYRE_NATS_URL"] == "nats://127.0.0.1:4333"
    assert "GYRE_STREAM_REPLICAS" not in env


def test_ports_of_a_nats_server_the_stack_does_not_start_need_not_be_free(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = int(taken.getsockname()[1])
        ports = {"gateway": free_port()}

        LocalStack(data_dir=tmp_path, nats_port=busy, ports=ports, external_nats_urls=CLUSTER).check_ports()
        with pytest.raises(StackError, match=f"nats \\({busy}\\)"):
            LocalStack(data_dir=tmp_path, nats_port=busy, ports=ports).check_ports()
