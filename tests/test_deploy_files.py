"""The deployment files are valid and agree with the code, checked with no network and no
running engine: compose against the compose-spec schema, Kubernetes manifests against the
Kubernetes 1.32 schemas (both vendored in tests/data/schemas), systemd units with
`systemd-analyze verify`, Prometheus rules with `promtool` where installed, and every command,
`SOC_` variable and metric name they use against the code itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client import REGISTRY
from referencing import Registry, Resource

import soc.metrics  # noqa: F401 (registers every series)
from soc.cli import _parser
from soc.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
SCHEMAS = Path(__file__).resolve().parent / "data" / "schemas"
PLATFORM_SERVICES = ("collector-syslog", "engine", "api", "notifier")


def _documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def _assert_soc_command(args: list[str]) -> None:
    """The arguments are a `soc` command line the CLI accepts."""
    try:
        _parser().parse_args(args)
    except SystemExit:
        pytest.fail(f"`soc {' '.join(args)}` is not a soc command line")


def _assert_soc_environment(env: dict[str, str], where: str) -> None:
    """Every `SOC_` variable names a configuration key with an acceptable value."""
    soc_env = {k: str(v) for k, v in env.items() if k.startswith("SOC_") and k != "SOC_CONFIG"}
    try:
        load_config(file=None, environ=soc_env)
    except ConfigError as exc:
        pytest.fail(f"{where}: {exc}")


# Compose


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    return loaded


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_compose_schema_check_catches_a_mistake(compose: dict[str, Any]) -> None:
    """The schema check has teeth: a misspelt service key is refused."""
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["engine"]["helthcheck"] = broken["services"]["engine"].pop("healthcheck")
    assert not jsonschema.Draft201909Validator(schema).is_valid(broken)


def test_compose_runs_each_part_with_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in PLATFORM_SERVICES:
        service = services[name]
        _assert_soc_command(service["command"])
        assert service["healthcheck"]["test"], name
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        _assert_soc_environment(service["environment"], f"compose service {name}")
    assert services["engine"]["deploy"]["replicas"] >= 2
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"], "Kafka must run in KRaft mode"
    assert not any("zookeeper" in name for name in services)
    assert services["elasticsearch"]["healthcheck"]["test"]
    declared = set(compose["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_publishes_only_syslog_and_loopback_ports(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            if name == "collector-syslog":
                assert port.startswith("514:")
            else:
                assert port.startswith(("127.0.0.1:", "${API_PUBLISH:-127.0.0.1")), (name, port)


def test_compose_env_example_holds_valid_soc_variables() -> None:
    lines = (DEPLOY / "compose" / "env.example").read_text().splitlines()
    env = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    _assert_soc_environment(env, "env.example")


# Kubernetes


def _kubernetes_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in _documents(path):
            yield path.name, doc


@cache
def _kubernetes_registry() -> Registry:
    definitions = json.loads((SCHEMAS / "kubernetes-v1.32" / "_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))


def _kubernetes_schema(doc: dict[str, Any]) -> dict[str, Any]:
    group, _, version = doc["apiVersion"].rpartition("/")
    stem = "-".join(p for p in (doc["kind"].lower(), group.split(".")[0], version) if p)
    path = SCHEMAS / "kubernetes-v1.32" / f"{stem}.json"
    assert path.exists(), f"no vendored schema for {doc['apiVersion']} {doc['kind']}"
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


KUBERNETES = list(_kubernetes_documents())


@pytest.mark.parametrize(
    ("file", "doc"),
    KUBERNETES,
    ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in KUBERNETES],
)
def test_kubernetes_manifest_matches_its_schema(file: str, doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(
        _kubernetes_schema(doc), registry=_kubernetes_registry()
    )
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{file} {list(e.path)}: {e.message}" for e in errors)


def test_kubernetes_schema_check_catches_a_mistake() -> None:
    deployment = next(d for _, d in KUBERNETES if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    validator = jsonschema.Draft202012Validator(
        _kubernetes_schema(broken), registry=_kubernetes_registry()
    )
    assert not validator.is_valid(broken)


def test_kubernetes_has_every_part_autoscaling_and_disruption_budgets() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in KUBERNETES}
    for name in ("soc-api", "soc-engine", "soc-notifier", "soc-collector-syslog"):
        assert ("Deployment", name) in kinds
    for name in ("soc-api", "soc-collector-syslog"):
        assert ("Service", name) in kinds
    assert ("HorizontalPodAutoscaler", "soc-engine") in kinds
    assert ("PodDisruptionBudget", "soc-engine") in kinds
    assert ("Secret", "soc-secrets") in kinds and ("ConfigMap", "soc-config") in kinds


def test_kubernetes_workloads_run_soc_unprivileged_with_valid_settings() -> None:
    config = next(d for _, d in KUBERNETES if d["kind"] == "ConfigMap")
    secret = next(d for _, d in KUBERNETES if d["kind"] == "Secret")
    config_file = yaml.safe_load(config["data"]["soc.yaml"])
    for _, doc in KUBERNETES:
        if doc["kind"] != "Deployment":
            continue
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            _assert_soc_command(container["args"])
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            env = {e["name"]: e["value"] for e in container.get("env", [])}
            name = doc["metadata"]["name"]
            _assert_soc_environment({**env, **secret["stringData"]}, f"kubernetes {name}")
    hpa = next(d for _, d in KUBERNETES if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["spec"]["maxReplicas"] <= config_file["pipeline"]["partitions"], (
        "engines beyond the partitions would idle"
    )


def test_kubernetes_configmap_is_a_valid_configuration(tmp_path: Path) -> None:
    config = next(d for _, d in KUBERNETES if d["kind"] == "ConfigMap")
    path = tmp_path / "soc.yaml"
    path.write_text(config["data"]["soc.yaml"])
    loaded = load_config(file=path, environ={})
    assert loaded.bus.startswith("kafka://")
    assert loaded.retention.legal_minimum_days >= 365


def test_kubernetes_secret_holds_placeholders_only() -> None:
    secret = next(d for _, d in KUBERNETES if d["kind"] == "Secret")
    for key, value in secret["stringData"].items():
        assert "CHANGE-ME" in value, f"{key} must be a placeholder"


def test_kustomization_lists_every_manifest_but_the_placeholder_secret() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kubernetes" / "kustomization.yaml").read_text())
    files = {p.name for p in (DEPLOY / "kubernetes").glob("*.yaml")}
    assert set(kustomization["resources"]) == files - {"kustomization.yaml", "secret.yaml"}
    if shutil.which("kubectl") is None:
        return
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.count("\nkind: ") + rendered.stdout.startswith("kind: ") >= len(
        [d for f, d in KUBERNETES if f != "secret.yaml"]
    )


# systemd

UNITS = sorted((DEPLOY / "systemd").glob("*.service"))


def _unit(path: Path) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_systemd_unit_is_hardened_and_runs_a_soc_command(path: Path) -> None:
    unit = _unit(path)
    command = unit["ExecStart"][0].split()
    assert command[0] == "/opt/soc/bin/soc"
    _assert_soc_command(command[1:])
    for key, value in (
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ):
        assert unit[key] == [value], f"{path.name}: {key}"
    capabilities = set(unit["CapabilityBoundingSet"][0].split())
    expected = {
        "soc-agent.service": set(),
        "soc-collector-syslog.service": {"CAP_NET_BIND_SERVICE"},
        "soc-collector-netmeta.service": {"CAP_NET_RAW", "CAP_NET_ADMIN"},
    }
    assert capabilities == expected[path.name]
    environment = dict(
        item.split("=", 1) for line in unit.get("Environment", []) for item in line.split()
    )
    _assert_soc_environment(environment, path.name)


def test_systemd_units_cover_the_agent_and_the_collectors() -> None:
    assert {p.name for p in UNITS} == {
        "soc-agent.service",
        "soc-collector-syslog.service",
        "soc-collector-netmeta.service",
    }


@pytest.mark.parametrize("path", UNITS, ids=[p.name for p in UNITS])
def test_systemd_analyze_verifies_the_unit(path: Path, tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # The unit names the installed path; verify needs an executable there, so point it at this
    # checkout's `soc` (everything else is checked as written).
    soc = Path(sys.executable).parent / "soc"
    copy = tmp_path / path.name
    copy.write_text(path.read_text().replace("/opt/soc/bin/soc", str(soc)))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_LOG_LEVEL": "notice", "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# The container image


def test_containerfile_runs_soc_unprivileged_with_valid_defaults() -> None:
    text = (DEPLOY / "Containerfile").read_text()
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["soc"\]$', text, re.M)
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    block = re.search(r"^ENV (.*?)(?=^\S)", text, re.M | re.S)
    assert block
    env = dict(re.findall(r"(SOC_[A-Z_]+)=(\S+)", block[1]))
    assert env["SOC_DATA_DIR"] == "/var/lib/soc"
    _assert_soc_environment(env, "Containerfile")


# Prometheus and Grafana


#: Series Prometheus makes itself, not the platform.
PROMETHEUS_OWN = {"up"}
#: Labels Prometheus adds to every series it scrapes.
TARGET_LABELS = {"job", "instance", "le"}


@cache
def _labels_of() -> dict[str, set[str]]:
    """Every series name the code exports (with _total, _bucket, ... forms) -> its labels."""
    found: dict[str, set[str]] = {}
    for collector, names in REGISTRY._collector_to_names.items():
        labels = set(getattr(collector, "_labelnames", ()))
        for name in names:
            if name.startswith("soc_"):
                found[name] = labels
    return found


def _selectors(expr: str) -> tuple[list[tuple[str, set[str]]], list[set[str]]]:
    """(series name, matcher labels) of every selector, and the label lists of `by`/`on`."""
    selectors: list[tuple[str, set[str]]] = []
    groupings: list[set[str]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            labels = {m.name for m in node.matchers.matchers} - {"__name__"}
            selectors.append((str(node.name), labels))
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            groupings.append(set(node.modifier.labels))
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None and matching.labels:
                groupings.append(set(matching.labels))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return selectors, groupings


def _assert_expr_names_code_series(expr: str, where: str) -> None:
    known = _labels_of()
    selectors, groupings = _selectors(expr)
    assert selectors, f"{where}: no series in {expr!r}"
    usable: set[str] = set(TARGET_LABELS)
    for name, labels in selectors:
        if name in PROMETHEUS_OWN:
            continue
        assert name in known, f"{where}: {name} is not a series the code defines"
        assert labels <= known[name] | TARGET_LABELS, (
            f"{where}: {name} has no label {sorted(labels - known[name])}"
        )
        usable |= known[name]
    for grouping in groupings:
        assert grouping <= usable, f"{where}: grouping by unknown {sorted(grouping - usable)}"


def _alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@pytest.mark.parametrize("rule", _alert_rules(), ids=lambda r: str(r["alert"]))
def test_alert_rule_names_series_the_code_defines(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in {"critical", "warning", "info"}
    for key in ("summary", "description", "runbook"):
        assert rule["annotations"][key], f"{rule['alert']}: {key}"
    _assert_expr_names_code_series(rule["expr"], rule["alert"])


def test_alert_rules_cover_what_the_issue_asks() -> None:
    names = {rule["alert"] for rule in _alert_rules()}
    for wanted in (
        "SocSourceSilent",
        "SocBusLagGrowing",
        "SocRecordsDropped",
        "SocStoreErrors",
        "SocNotificationFailures",
    ):
        assert wanted in names


def test_the_series_check_catches_an_unknown_series_and_label() -> None:
    with pytest.raises(AssertionError, match="not a series the code defines"):
        _assert_expr_names_code_series("rate(soc_no_such_total[5m]) > 0", "probe")
    with pytest.raises(AssertionError, match="has no label"):
        _assert_expr_names_code_series('soc_bus_lag_records{colour="red"} > 0', "probe")
    with pytest.raises(AssertionError, match="grouping by unknown"):
        _assert_expr_names_code_series("sum by (colour) (soc_bus_lag_records) > 0", "probe")


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=120, cwd=DEPLOY / "prometheus"
    )


def test_promtool_accepts_the_rules_and_the_scrape_configs() -> None:
    for args in (
        ("check", "rules", "alerts.yml"),
        ("check", "config", "prometheus.yml"),
        ("check", "config", "prometheus.compose.yml"),
    ):
        result = _promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_fire_the_alerts_on_the_code_series() -> None:
    result = _promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _dashboard_targets() -> list[tuple[str, str]]:
    dashboard = json.loads((DEPLOY / "grafana" / "soc.json").read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_dashboard_panels_are_laid_out_and_unique() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "soc.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
    assert len(_dashboard_targets()) >= 20


@pytest.mark.parametrize(("title", "expr"), _dashboard_targets(), ids=lambda v: str(v)[:40])
def test_dashboard_panel_queries_name_series_the_code_defines(title: str, expr: str) -> None:
    _assert_expr_names_code_series(expr, title)


def test_dashboard_shows_every_series_the_issue_names() -> None:
    text = " ".join(expr for _, expr in _dashboard_targets())
    for series in (
        "soc_syslog_source_records_total",
        "soc_syslog_source_bytes_total",
        "soc_normalize_failures_total",
        "soc_dropped_total",
        "soc_bus_lag_records",
        "soc_rule_hits_total",
        "soc_alerts_stored_total",
        "soc_alert_latency_seconds_bucket",
        "soc_store_write_seconds_bucket",
        "soc_store_errors_total",
        "soc_notifications_sent_total",
        "soc_notifications_failed_total",
        "soc_correlation_groups",
        "soc_correlation_evictions_total",
    ):
        assert series in text, series


# Guides


def test_guides_link_to_files_that_exist() -> None:
    for guide in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", guide.read_text()):
            if target.startswith(("http://", "https://")):
                continue
            assert (guide.parent / target).exists(), f"{guide.name}: broken link {target}"


def test_operator_guide_references_every_configuration_section() -> None:
    import dataclasses

    from soc.config import Config

    text = (ROOT / "docs" / "operator.md").read_text()
    for field in dataclasses.fields(Config):
        assert f"`{field.name}" in text, f"docs/operator.md: configuration `{field.name}` missing"
    for key in ("events_days", "alerts_days", "incidents_days", "legal_minimum_days"):
        assert f"`retention.{key}`" in text


def test_analyst_guide_is_in_vietnamese_and_covers_the_workflow() -> None:
    text = (ROOT / "docs" / "analyst.vi.md").read_text()
    for words in ("Hàng đợi sự cố", "Vòng đời sự cố", "Tìm kiếm", "Săn tìm", "Cảnh báo nhầm"):
        assert words in text
