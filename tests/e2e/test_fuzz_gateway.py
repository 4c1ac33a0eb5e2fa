"""Schemathesis against the running gateway's own OpenAPI: no input, valid or not, gets a 5xx or stops a process.

Every operation the gateway publishes is fuzzed with requests that fit its schema and requests that
break it, through the real stack (bus, ingest, embed, generate). Bounded work, not bounded time: a
fixed number of examples per operation, and generation kept to a few tokens so chat stays cheap.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
import pytest
import schemathesis

# Loaded now, at collection: schemathesis imports these lazily, and compiling them later in a run fails
# with "AST constructor recursion depth mismatch" on CPython 3.11 < 3.11.8 once any test has raised and
# caught a RecursionError (the deep-nesting tests do, by design) - a CPython bug, not the gateway's.
import schemathesis.specs.openapi.definitions
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from gyre_cli.stack import LocalStack
from tests.e2e.conftest import Tenant

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 25
# Routes that return a stream or a page rather than JSON are still fuzzed: only the status matters here.
CHAT_MAX_TOKENS = 4


def bounded_generation(body: Any) -> Any:
    """A chat body with generation cut to a few tokens: the fuzzing is about the gateway, not the model."""
    if isinstance(body, dict) and "messages" in body:
        return {**body, "max_tokens": CHAT_MAX_TOKENS, "max_completion_tokens": None}
    return body


def gateway_schema(client: httpx.Client) -> Any:
    response = client.get("/openapi.json")
    assert response.status_code == 200, response.text
    return schemathesis.openapi.from_dict(response.json())


def test_no_request_to_any_operation_gets_a_5xx_or_stops_a_service(
    stack: LocalStack, tenant_a: Tenant, client_a: httpx.Client
) -> None:
    schema = gateway_schema(client_a)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10, "the gateway's OpenAPI lists fewer operations than it serves"
    server_errors: list[str] = []
    statuses: Counter[int] = Counter()

    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests on every run: a failure reproduces
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def call(case: Any) -> None:
            case.body = bounded_generation(case.body)
            response = case.call(base_url=stack.gateway_url, headers=tenant_a.headers, timeout=120)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}")

        call()

    print(f"fuzzed {len(operations)} operations with {statuses.total()} requests: {dict(sorted(statuses.items()))}")
    assert statuses.total() >= len(operations)
    assert server_errors == [], "\n".join(server_errors[:10])
    for name, process in stack.processes.items():
        assert process.poll() is None, f"{name} exited during the fuzzing:\n{stack.log_tail(name)}"
    assert client_a.get("/readyz").status_code == 200
