"""Event ids: UUIDv7 layout (48-bit millisecond time, then randomness), so ids sort by arrival."""

from __future__ import annotations

import os
import uuid


def new_event_id(now: float) -> str:
    millis = int(now * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | rand
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return str(uuid.UUID(int=value))
