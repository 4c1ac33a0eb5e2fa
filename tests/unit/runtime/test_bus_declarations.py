"""What the services declare on the bus: every contract has a producer or is marked planned, and the
subject patterns of the permission table resolve to event types."""

from __future__ import annotations

import pytest
from faststream.nats import NatsBroker

from gyre_contracts import EmbedResult, GenerationLoad, ModelPromoted, ReindexRequested, RetrieveResult
from gyre_contracts.catalog import ALL_EVENTS, PLANNED
from gyre_runtime.bus.broker import declare, events_on
from gyre_runtime.bus.permissions import SERVICE_ACCESS, Naming
from gyre_runtime.bus.publisher import subject_matches

REPLIES = {RetrieveResult, EmbedResult, GenerationLoad}  # answers of request/reply, on the asker's inbox
# Sent with the operator's credential: by `gyre reindex`, and by `gyre models promote` and `rollback`.
OPERATOR = {ReindexRequested, ModelPromoted}


def test_every_event_has_a_producer_or_is_marked_planned() -> None:
    declared = [declare(NatsBroker(), service, Naming()) for service in SERVICE_ACCESS]
    published = {cls for d in declared for subject in d.publishers for cls in events_on(subject)}
    asked = {cls for access in SERVICE_ACCESS.values() for s in access.asks for cls in events_on(s)}
    produced = published | asked | REPLIES | OPERATOR
    unproduced = {cls.__name__ for cls in ALL_EVENTS} - {cls.__name__ for cls in produced}
    assert unproduced == {cls.__name__ for cls in PLANNED}
    assert not set(PLANNED) & produced, "a planned event got a producer: take it off PLANNED"


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("ingest.submitted.*", "ingest.submitted.acme", True),
        ("ingest.submitted.*", "ingest.submitted", False),
        ("ingest.>", "ingest.submitted.acme", True),
        ("ingest.>", "ingest", False),
        ("dlq.ingest", "dlq.ingest", True),
        ("dlq.ingest", "dlq.embed", False),
    ],
)
def test_subject_patterns_match_as_nats_does(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_a_parameterised_subject_resolves_to_its_event_and_an_unknown_one_is_refused() -> None:
    assert [cls.__name__ for cls in events_on("dlq.ingest")] == ["DeadLetter"]
    assert [cls.__name__ for cls in events_on("ingest.submitted.*")] == ["DocumentSubmitted"]
    with pytest.raises(LookupError, match="no event type"):
        events_on("nowhere.at.all")
