"""Session-wide: clear what the run left on the local Kafka and Elasticsearch (see
`tests/local_services.py`)."""

from __future__ import annotations

from typing import Any

import pytest

from tests import local_services

_BEFORE: dict[str, set[str]] | None = None


def pytest_sessionstart(session: pytest.Session) -> None:
    global _BEFORE
    try:
        _BEFORE = local_services.snapshot()
    except Exception as exc:  # a service half up: nothing is cleared, the tests say why
        print(f"\nlocal services not listed, nothing will be cleared after the run: {exc!r}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    if _BEFORE is None or hasattr(session.config, "workerinput"):
        return
    try:
        gone = local_services.forget(_BEFORE)
    except Exception as exc:
        print(f"\nclearing the run's topics and indices failed: {exc!r}")
        return
    if any(gone.values()):
        print(
            f"\ncleared from the local services: {gone['topics']} topics, "
            f"{gone['indices']} indices, {gone['templates']} index templates"
        )
