"""schemathesis against the OpenAPI document: whatever a client sends, the API answers with a
4xx that names the problem, never a 5xx. Runs as the province-wide machine token, so every
route is reached past authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.api_world import MACHINE_TOKEN, world


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    manager = world(tmp)
    loop = asyncio.new_event_loop()
    w = loop.run_until_complete(manager.__aenter__())
    yield schemathesis.openapi.from_asgi("/openapi.json", w.app)
    loop.run_until_complete(manager.__aexit__(None, None, None))
    loop.close()


SETTINGS = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
HEADERS = {"Authorization": f"Bearer {MACHINE_TOKEN}"}


def test_no_request_makes_the_api_fail(api_schema: Any) -> None:
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/metrics":
            continue
        operations += 1

        @SETTINGS
        @given(case=operation.as_strategy())
        def check(case: Any) -> None:
            response = case.call(headers=HEADERS)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} {case.query or ''}"
                    f" {str(case.body)[:200]}: {response.status_code} {response.text[:300]}"
                )

        check()
    assert operations >= 40
    assert not failures, "\n".join(failures[:20])
