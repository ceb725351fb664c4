"""RFC 3339 parsing that reads Kubernetes and MLflow times on every Python."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from maestro_ml_async._timestamps import parse_rfc3339

UTC = timezone.utc
BASE = datetime(2024, 1, 5, 22, 58, 20, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-05T22:58:20Z", BASE),
        ("2024-01-05T22:58:20z", BASE),
        ("2024-01-05T22:58:20.6Z", BASE.replace(microsecond=600000)),
        ("2024-01-05T22:58:20.123456789Z", BASE.replace(microsecond=123456)),
        ("2024-01-05T22:58:20.000001Z", BASE.replace(microsecond=1)),
        ("2024-01-05T22:58:20+00:00", BASE),
        (
            "2024-01-05T23:58:20.5+01:00",
            BASE.replace(microsecond=500000),
        ),
        ("  2024-01-05T22:58:20Z\n", BASE),
    ],
)
def test_rfc3339_forms_parsed(text: str, expected: datetime) -> None:
    parsed = parse_rfc3339(text)

    assert parsed == expected
    assert parsed.utcoffset() is not None


def test_offset_kept_as_given() -> None:
    parsed = parse_rfc3339("2024-01-05T23:58:20.123456789+01:00")

    assert parsed.utcoffset() == timedelta(hours=1)
    assert parsed.microsecond == 123456


def test_time_without_offset_stays_naive() -> None:
    parsed = parse_rfc3339("2024-01-05T22:58:20.5")

    assert parsed.tzinfo is None
    assert parsed.microsecond == 500000


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-05T00:00:00Z", "Z"])
def test_invalid_timestamp_raises(text: str) -> None:
    with pytest.raises(ValueError):
        parse_rfc3339(text)
