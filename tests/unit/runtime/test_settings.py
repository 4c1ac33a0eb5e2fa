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
