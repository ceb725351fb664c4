"""Parsing of RFC 3339 timestamps the same way on every supported Python."""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["parse_rfc3339"]

# Python 3.10's `datetime.fromisoformat` reads neither "Z" nor fractions of
# other than 3 or 6 digits, while Kubernetes writes up to 9 (RFC3339Nano).
_FRACTION = re.compile(r"(?<=:\d\d)\.(\d+)")
_UTC_SUFFIX = re.compile(r"[Zz]$")


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 or ISO 8601 timestamp, to the microsecond.

    A fraction of a second with more than 6 digits is cut to 6, and "Z" means
    UTC. A time without an offset stays naive, as `datetime.fromisoformat`
    leaves it.

    Raises:
        ValueError: `text` is not such a timestamp.
    """
    normal = _UTC_SUFFIX.sub("+00:00", text.strip())
    normal = _FRACTION.sub(lambda found: "." + found[1][:6].ljust(6, "0"), normal, 1)
    return datetime.fromisoformat(normal)
