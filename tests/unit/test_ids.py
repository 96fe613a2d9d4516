"""Event ids sort by arrival time and are valid UUIDv7."""

import uuid

from events.ids import new_event_id


def test_ids_are_uuid7_and_sort_by_time() -> None:
    """Later milliseconds give larger ids; version and variant bits are set."""
    first, second = new_event_id(1_800_000_000.000), new_event_id(1_800_000_000.002)
    assert first < second
    parsed = uuid.UUID(first)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert int(first.replace("-", "")[:12], 16) == 1_800_000_000_000
