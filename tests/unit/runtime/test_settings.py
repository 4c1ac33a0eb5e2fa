"""Settings come from GYRE_* variables, fail clearly, and their documentation is generated."""

from __future__ import annotations

import pytest

from gyre_runtime.config import SettingsError, load_settings
from tools.gen_settings_doc import DOC, render


def test_settings_are_read_from_gyre_variables() -> None:
    settings = load_settings({"GYRE_ONNX_THREADS": "3", "GYRE_DATA_DIR": "/tmp/x", "OTHER": "1"})
    assert settings.onnx_threads == 3
    assert str(settings.model_path) == "/tmp/x/models"
    assert settings.port_for("gateway") == 8080


def test_a_bad_value_names_the_setting() -> None:
    with pytest.raises(SettingsError, match="onnx_threads"):
        load_settings({"GYRE_ONNX_THREADS": "many"})


def test_the_settings_document_is_up_to_date() -> None:
    assert DOC.read_text() == render(), "docs/settings.md is stale: run `just docs`"


def test_a_retrieval_top_k_no_retrieve_request_may_carry_is_refused_at_load() -> None:
    # Past the events' limit every chat's retrieval would be dead-lettered by embed.
    with pytest.raises(SettingsError, match="retrieval_top_k"):
        load_settings({"GYRE_RETRIEVAL_TOP_K": "80"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [("GYRE_PII_POLICY", "mask"), ("GYRE_DUPLICATE_POLICY", "merge"), ("GYRE_CHUNK_STRATEGY", "words"),
     ("GYRE_GENERATION_BACKEND", "llamacpp")],
)
def test_a_setting_with_fixed_choices_refuses_any_other_value_at_load(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable.removeprefix("GYRE_").lower()):
        load_settings({variable: value})


def test_the_default_tenant_policy_comes_from_the_settings_in_one_place() -> None:
    from gyre_runtime.state.tenants import TenantPolicy

    settings = load_settings({"GYRE_PII_POLICY": "reject", "GYRE_DUPLICATE_POLICY": "keep",
                              "GYRE_NEAR_DUPLICATE_THRESHOLD": "0.8"})
    assert TenantPolicy.from_settings(settings) == TenantPolicy(pii="reject", duplicates="keep",
                                                                near_duplicate_threshold=0.8)
