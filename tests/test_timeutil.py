"""The platform's one textual form of a time (UTC, microseconds, trailing Z)."""

from __future__ import annotations

import pytest

from soc.timeutil import canonical, format_ts, parse_ts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T03:00:00.123000Z", "2026-11-28T03:00:00.123000Z"),
        ("2026-11-28T10:00:00+07:00", "2026-11-28T03:00:00.000000Z"),
        ("2026-11-28T03:00:00Z", "2026-11-28T03:00:00.000000Z"),
        ("2026-11-28T03:00:00.5", "2026-11-28T03:00:00.500000Z"),
        ("2026-11-28 03:00:00.123000+00:00", "2026-11-28T03:00:00.123000Z"),
    ],
)
def test_canonical_gives_the_form_format_ts_writes(text: str, expected: str) -> None:
    assert canonical(text) == expected == format_ts(parse_ts(text))


@pytest.mark.parametrize(
    "text", ["2026-02-31T00:00:00.000000Z", "2026-11-28T24:00:00.000000Z", "yesterday", ""]
)
def test_canonical_refuses_what_is_not_a_time_even_in_the_canonical_shape(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 timestamp"):
        canonical(text)
