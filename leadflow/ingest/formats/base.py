"""What every vendor format provides: unwrapping a document into records, recognising a record,
and the DuckDB SQL that maps the records to leadflow's event columns."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from leadflow import domain


@dataclass(frozen=True)
class FormatOptions:
    """What the configuration adds to a mapping.

    `track_types`: a Segment track name -> the leadflow (or custom) event type it is; it adds to
    or overrides the names of Segment's Email spec. `custom_types`: event types the configuration
    declares beyond leadflow's own; a track name equal to one of these (or to a leadflow type) is
    that type."""

    track_types: dict[str, str] = field(default_factory=dict)
    custom_types: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "track_types", dict(self.track_types))
        object.__setattr__(self, "custom_types", tuple(self.custom_types))
        valid = self.valid_types
        for name, event_type in self.track_types.items():
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f"track_types: empty track name for {event_type!r}")
            if event_type not in valid:
                raise ValueError(
                    f"track_types: {name!r} maps to unknown event type {event_type!r} "
                    "(not a leadflow type nor one of custom_types)"
                )

    @property
    def valid_types(self) -> frozenset[str]:
        return frozenset(domain.EVENT_TYPES) | frozenset(self.custom_types)


@dataclass(frozen=True)
class EventFormat:
    """One vendor's event records. `name` is the `--format` name; `source` the `source` of its
    events in leadflow."""

    name: str
    source: str

    def unwrap(self, document: Any) -> list[Any] | None:
        """The records of a whole parsed JSON document of this format, in document order, or
        None if it is not one. A JSON array (or a single object) is this format's if its first
        object record `matches`; wrapped formats also know their wrapper. An element that is not
        a JSON object is kept in its place (it is a record the reader reports as unreadable), so
        a record's number is its position."""
        if isinstance(document, dict):
            wrapped = self.unwrap_object(document)
            if wrapped is not None:
                return wrapped
            return [document] if self.matches(document) else None
        if isinstance(document, list):
            first = next((item for item in document if isinstance(item, dict)), None)
            return list(document) if first is not None and self.matches(first) else None
        return None

    def unwrap_object(self, document: dict) -> list[Any] | None:
        """The records of this format's wrapper object (a page, a report), or None."""
        return None

    def matches(self, record: Any) -> bool:
        """Whether a record has this format's shape."""
        raise NotImplementedError

    def mapping_sql(self, columns: Iterable[str], options: FormatOptions | None = None) -> str:
        """A DuckDB `SELECT ... FROM raw` yielding OUTPUT_COLUMNS, one row per row of `raw`.

        `raw` has a text column per top-level key of the records and `_row BIGINT`; `columns`
        names the key columns it has (`_row` may be included). An absent column reads as NULL."""
        raise NotImplementedError


def first_object(items: Any) -> dict | None:
    if not isinstance(items, list):
        return None
    return next((item for item in items if isinstance(item, dict)), None)
