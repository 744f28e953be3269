"""Reading expected fields out of nested ECS events, shared by the normalizer tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

#: The site's zone in the normalizer tests (Vietnam's, UTC+7).
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

#: A field the event does not have (distinct from a present null).
ABSENT = object()


def field(event: dict[str, Any], dotted: str) -> Any:
    node: Any = event
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return ABSENT
        node = node[key]
    return node


def assert_fields(event: dict[str, Any], expected: dict[str, Any]) -> None:
    actual = {name: field(event, name) for name in expected}
    assert actual == expected


def syslog_event(line: str, peer: str = "10.0.0.1") -> dict[str, Any]:
    """One syslog line as the stream normalizes it, received from `peer`."""
    from soc.normalize import NormalizeOptions, normalize

    record = {
        "id": "line-1",
        "received_at": "2026-11-28T03:20:02Z",
        "source": {"type": "syslog", "peer": peer},
        "data": line,
    }
    return normalize(record, NormalizeOptions(timezone=ZONE))


def port_scans(folder: Path, name: str, lines: list[str]) -> list[dict[str, Any]]:
    """`soc scan` over a file of these lines with the project's own rules: its port-scan
    alerts (every line must have been read)."""
    import io

    import orjson

    from soc.detect.rules import load_rules
    from soc.scan.run import scan

    log = folder / name
    log.write_text("\n".join(lines) + "\n")
    output = io.BytesIO()
    rules = load_rules([Path(__file__).resolve().parents[1] / "rules"])
    summary = scan([log], rules, output, timezone=ZONE)
    assert summary.events == len(lines)
    alerts = [orjson.loads(line) for line in output.getvalue().splitlines()]
    return [alert for alert in alerts if alert["rule"]["name"] == "Port Scan From One Address"]
