"""Matches as the detector publishes them on `soc.matches`, for the correlation tests: failed
SSH logins feeding the project's brute-force correlation (10 failures from one address in
5 minutes)."""

from __future__ import annotations

from soc.bus.base import Message
from soc.detect.correlation import Match
from soc.detect.stage import _match_value

FAILED_PASSWORD = "0b0c9a3e-6f1d-4d8e-9a57-2f4f1f0a6c11"
BRUTE_FORCE = "9a1c6e2f-4b7d-4e58-a3c1-7f2b8d0e5a42"


def failure(n: int, ip: str = "203.0.113.9") -> Message:
    """The n-th failed login from `ip`, n seconds after the first."""
    event = {
        "@timestamp": f"2026-11-28T08:00:{n:02d}.000000Z",
        "event": {"id": f"fail-{ip}-{n}"},
        "source": {"ip": ip},
    }
    match = Match(
        FAILED_PASSWORD, "sshd_failed_password", 1_764_316_800.0 + n, event, f"fail-{ip}-{n}"
    )
    return Message(f"source.ip={ip}", _match_value(match))
