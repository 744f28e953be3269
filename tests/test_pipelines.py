"""Field-mapping pipelines: the platform's own apply to every load, each file once."""

from __future__ import annotations

from pathlib import Path

import pytest

from soc.detect.pipelines import PipelineError, resolve_pipeline
from soc.detect.rules import SHIPPED_PIPELINES, load_rules, pipeline_files

ROOT = Path(__file__).resolve().parents[1]

LINUX_RULE = """
title: Linux rule in Sigma's taxonomy
id: 5f0c3a52-7a8e-4c61-9d0e-1a2b3c4d5e6f
status: test
logsource: {product: linux, category: process_creation}
detection:
  selection: {Image|endswith: /nc}
  condition: selection
level: high
"""


def test_the_shipped_pipelines_come_first_whatever_the_rule_paths(tmp_path: Path) -> None:
    shipped = sorted(str(p) for p in SHIPPED_PIPELINES.glob("*.yml"))
    assert {Path(p).name for p in shipped} >= {
        "linux.yml",
        "web.yml",
        "network.yml",
        "antivirus.yml",
        "windows_security.yml",
    }
    assert pipeline_files([tmp_path]) == shipped
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "own.yml").write_text("name: own\ntransformations: []\n")
    assert pipeline_files([tmp_path]) == [*shipped, str(tmp_path / "pipelines" / "own.yml")]


def test_a_pipeline_file_named_twice_is_applied_once() -> None:
    linux = str(SHIPPED_PIPELINES / "linux.yml")
    once = resolve_pipeline(["ecs_windows", linux])
    twice = resolve_pipeline(
        ["ecs_windows", linux, str(ROOT / "rules/pipelines/../pipelines/linux.yml")]
    )
    assert len(twice.items) == len(once.items)


def test_a_missing_pipeline_file_is_named() -> None:
    with pytest.raises(PipelineError, match=r"nowhere\.yml does not exist"):
        resolve_pipeline(["/nowhere.yml"])


def test_rules_outside_rules_dir_get_the_platform_mapping(tmp_path: Path) -> None:
    """A rule directory of its own (SigmaHQ's, a hunter's) is mapped as rules/ is: the Linux
    rule reads process.executable, which the Linux normalizers fill."""
    (tmp_path / "nc.yml").write_text(LINUX_RULE)
    ruleset = load_rules([tmp_path])
    (rule,) = ruleset.rules
    routed = {"module": "auditd", "category": ["process"], "type": ["start"]}
    event = {"event": routed, "process": {"executable": "/usr/bin/nc"}}
    assert ruleset.match(event) == [rule]
    assert ruleset.match({"event": routed, "Image": "/usr/bin/nc"}) == []


def test_pipelines_apply_in_priority_order_whatever_order_they_are_named(tmp_path: Path) -> None:
    """A pipeline that renames a rule field before ecs_windows prefixes it (priority under 20)
    must run first even when named after it, as pySigma's resolver orders pipelines."""
    early = tmp_path / "early.yml"
    early.write_text(
        "name: early\npriority: 10\ntransformations:\n  - id: early_rename\n"
        "    type: field_name_mapping\n    mapping: {Foo: winlog.event_data.Bar}\n"
    )
    pipeline = resolve_pipeline(["ecs_windows", str(early)])
    identifiers = [item.identifier for item in pipeline.items]
    assert identifiers.index("early_rename") < identifiers.index("ecs_windows_field_mapping")
    rule = tmp_path / "rules" / "foo.yml"
    rule.parent.mkdir()
    rule.write_text(
        "title: Foo\nid: 0e7c51d2-3f35-4a52-9c6b-2d7e0c4b8a11\nstatus: test\n"
        "logsource: {product: windows, service: security}\n"
        "detection:\n  selection: {Foo: x}\n  condition: selection\nlevel: low\n"
    )
    from soc.detect.rules import LoadOptions

    (compiled,) = load_rules([rule], LoadOptions(pipelines=("ecs_windows", str(early)))).rules
    security = {"winlog": {"channel": "Security"}, "event": {"code": "4624"}}
    assert compiled.matches(
        {**security, "winlog": {"channel": "Security", "event_data": {"Bar": "x"}}}
    )
    assert not compiled.matches(
        {**security, "winlog": {"channel": "Security", "event_data": {"Foo": "x"}}}
    )
