"""`gyre reindex`: its default collection name and how it reports the outcome."""

from __future__ import annotations

import argparse
import datetime as dt

from gyre_cli import reindex_command
from gyre_contracts import ReindexCompleted, ReindexFailed
from gyre_runtime.vectorstore.base import check_collection_name


def test_the_default_collection_is_a_valid_fresh_name_that_sorts_by_time() -> None:
    first = reindex_command.default_collection(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC))
    later = reindex_command.default_collection(dt.datetime(2026, 1, 2, 3, 4, 6, tzinfo=dt.UTC))
    assert first == "gyre_chunks_20260102030405" and first < later
    check_collection_name(first)


def test_arguments_default_to_the_active_model_and_no_waiting() -> None:
    parser = argparse.ArgumentParser()
    reindex_command.add_parser(parser.add_subparsers())
    args = parser.parse_args(["reindex"])
    assert (args.collection, args.embedding_model, args.wait, args.allow_missing) == (None, None, False, False)
    assert args.func is reindex_command.cmd_reindex
    args = parser.parse_args(["reindex", "--collection", "c2", "--embedding-model", "m2", "--wait"])
    assert (args.collection, args.embedding_model, args.wait) == ("c2", "m2", True)


def test_the_outcome_is_told_with_its_figures_and_what_is_missing() -> None:
    done = ReindexCompleted(
        request_id="r", collection="new", previous_collection="old", embedding_model="m:1:abc", documents=3,
        points=12, previous_points=11, replayed_events=5, skipped_events=2, missing_count=1,
        missing_documents=("t/aged",), duration_ms=1500.0,
    )
    text = reindex_command.describe_completed(done)
    assert "collection new now serves search (was old)" in text and "points: 12 (previously 11)" in text
    assert "t/aged" in text and "1.5 s" in text
    failed = ReindexFailed(request_id="r", collection="new", error="boom", attempt=2, final=False)
    assert "attempt 2, will retry): boom" in reindex_command.describe_failed(failed)
