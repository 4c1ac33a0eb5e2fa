"""The base every Gyre event derives from: frozen, keyword-only, tagged with type and version."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import ClassVar

import msgspec

from gyre_contracts.limits import TenantId


def utc_now() -> dt.datetime:
    """Timezone-aware now, the only clock events use."""
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    """A fresh random identifier (uuid4, hex)."""
    return uuid.uuid4().hex


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of all events. Subclasses set ``subject`` (suffix after the prefix) and a tag.

    The tag, e.g. ``gyre.ingest.submitted.v1``, is both the JSON ``type`` field and the
    CloudEvents ``ce-type`` header; a breaking change gets a new version in the tag.
    """

    subject: ClassVar[str] = ""
    tenant: TenantId = "default"

    @classmethod
    def event_type(cls) -> str:
        tag = cls.__struct_config__.tag
        assert isinstance(tag, str), f"{cls.__name__} has no string tag"
        return tag

    def cloudevent_subject(self) -> str:
        """What ``ce-subject`` carries: the entity the event is about."""
        for name in ("document_id", "request_id", "feedback_id", "name"):
            value = getattr(self, name, None)
            if isinstance(value, str):
                return value
        return ""


class Model(msgspec.Struct, frozen=True, kw_only=True):
    """Base of value objects carried inside events (not events themselves)."""
