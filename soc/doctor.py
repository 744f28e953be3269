"""`soc doctor`: is this installation fit to run, and if not, what to mend.

Each check answers OK, WARN (runs, but an operator should look), FAIL (will not run, or will lose
data) or SKIP (does not apply to this deployment), with a line saying how to mend it. The exit
code is 1 when any check fails. Checks only read, except a probe file in the data directory
(created and removed) to prove it is writable.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import sqlite3
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TextIO

from soc.config import Config, ConfigError, load_config
from soc.timeutil import utcnow

Status = Literal["OK", "WARN", "FAIL", "SKIP"]

#: Seconds of difference with a server's clock past which time ranges, correlation windows and
#: retention start to go wrong.
SKEW_WARN_SECONDS = 2.0
SKEW_FAIL_SECONDS = 60.0
#: How long a remote check may take before the service counts as unreachable.
REMOTE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class Options:
    config_file: Path | None = None
    environ: Mapping[str, str] | None = None
    #: Below this many GiB free in the data directory's file system: WARN.
    min_free_gib: float = 5.0


def _project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def check_data_dir(config: Config) -> Check:
    """The data directory (or the first existing parent it would be made in) takes a file."""
    target = config.data_dir
    probe_in = (
        target
        if target.exists()
        else next((parent for parent in target.parents if parent.exists()), Path("."))
    )
    try:
        if not probe_in.is_dir():
            raise NotADirectoryError(f"{probe_in} is not a directory")
        with tempfile.NamedTemporaryFile(dir=probe_in, prefix=".soc-doctor-"):
            pass
    except OSError as exc:
        return Check(
            "data_dir",
            "FAIL",
            f"{target}: not writable ({exc})",
            f"make {target} a directory the service user can write, or set data_dir"
            " (SOC_DATA_DIR) elsewhere",
        )
    state = "exists" if target.exists() else f"will be created in {probe_in}"
    return Check("data_dir", "OK", f"{target.resolve()} writable ({state})")


def check_disk(config: Config, min_free_gib: float) -> Check:
    where = next((p for p in (config.data_dir, *config.data_dir.parents) if p.exists()), Path("."))
    usage = shutil.disk_usage(where)
    free_gib = usage.free / 2**30
    detail = f"{free_gib:.1f} GiB free of {usage.total / 2**30:.1f} GiB at {where.resolve()}"
    if usage.free < 2**28:
        return Check("disk", "FAIL", detail, "free space now: the store stops writing when full")
    if free_gib < min_free_gib:
        return Check(
            "disk",
            "WARN",
            f"{detail} (under {min_free_gib:g} GiB)",
            "free space, grow the volume, or shorten retention (docs/operator.md, Sizing)",
        )
    return Check("disk", "OK", detail)


def check_sqlite(config: Config) -> Check:
    path = config.sqlite_path
    if not path.exists():
        return Check("store", "OK", f"sqlite {path}: not created yet (made at first start)")
    try:
        with sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5) as conn:
            (result,) = conn.execute("PRAGMA quick_check").fetchone()
    except sqlite3.Error as exc:
        return Check(
            "store",
            "FAIL",
            f"sqlite {path}: cannot open for writing ({exc})",
            "check the file's owner and permissions; restore from backup if it is corrupt",
        )
    if result != "ok":
        return Check(
            "store",
            "FAIL",
            f"sqlite {path}: integrity check says {result}",
            "stop the platform and restore the last backup (docs/operator.md, Backup)",
        )
    return Check("store", "OK", f"sqlite {path}: writable, integrity ok")


async def check_elasticsearch(url: str) -> list[Check]:
    """Reachable, same major version as the client, cluster health, clock skew. Asks only core
    APIs (`_cluster/health`, `_nodes`): minimal distributions have no `GET /`."""
    client_version = metadata.version("elasticsearch")
    base = url.rstrip("/")
    fix = f"start Elasticsearch or correct store (SOC_STORE={url})"
    try:
        health = await asyncio.to_thread(_get, f"{base}/_cluster/health")
        nodes = await asyncio.to_thread(_get, f"{base}/_nodes?filter_path=nodes.*.version")
        sent = utcnow()
        stats = await asyncio.to_thread(
            _get, f"{base}/_nodes/_local/stats/os?filter_path=nodes.*.timestamp"
        )
        received = utcnow()
    except (OSError, ValueError) as exc:
        return [Check("store", "FAIL", f"elasticsearch {url}: unreachable ({exc!r})", fix)]
    if health.status != 200 or health.product != "Elasticsearch":
        return [
            Check(
                "store",
                "FAIL",
                f"elasticsearch {url}: answered {health.status}, not as Elasticsearch",
                "point store at an Elasticsearch node (with credentials in the URL if secured)",
            )
        ]
    checks = [_es_health(url, str(health.body.get("status", "?")))]
    versions = sorted(
        {str(node.get("version")) for node in nodes.body.get("nodes", {}).values()}
        if nodes.status == 200
        else {"?"}
    )
    majors = {version.split(".")[0] for version in versions}
    if majors != {client_version.split(".")[0]}:
        checks.append(
            Check(
                "versions.elasticsearch",
                "FAIL",
                f"server {', '.join(versions)}, client elasticsearch-py {client_version}",
                "the client's major must equal the server's: install the matching"
                " elasticsearch-py, or upgrade the cluster",
            )
        )
    else:
        detail = f"server {', '.join(versions)}, client {client_version}"
        checks.append(Check("versions.elasticsearch", "OK", detail))
    stamps = [n.get("timestamp") for n in stats.body.get("nodes", {}).values()]
    remote = stamps[0] if stats.status == 200 and stamps else None
    checks.append(_skew(remote, sent, received, "Elasticsearch"))
    return checks


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    product: str
    body: dict[str, Any]


#: No proxies from the environment: the store is on the SOC's own network.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str) -> _Answer:
    """GET a JSON document; an HTTP error status is an answer, not an exception. Credentials in
    the URL (`https://user:pass@host:9200`) are sent as basic authentication."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"not an http(s) URL: {url}")
    host = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    request = urllib.request.Request(bare)  # noqa: S310 (scheme checked above)
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        secret = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with _OPENER.open(request, timeout=REMOTE_TIMEOUT) as response:
            status, headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, raw = exc.code, exc.headers, exc.read()
    body = json.loads(raw) if raw else {}
    product = headers.get("X-Elastic-Product", "")
    return _Answer(status, product, body if isinstance(body, dict) else {})


def _es_health(url: str, status: str) -> Check:
    if status == "green":
        return Check("store", "OK", f"elasticsearch {url}: cluster health green")
    if status == "yellow":
        return Check(
            "store",
            "WARN",
            f"elasticsearch {url}: cluster health yellow (replicas not allocated)",
            "add a node or set number_of_replicas to 0 on a single-node cluster",
        )
    return Check(
        "store",
        "FAIL",
        f"elasticsearch {url}: cluster health {status}",
        "a primary shard is missing: see GET _cluster/allocation/explain",
    )


def _skew(remote_ms: Any, sent: datetime, received: datetime, server: str) -> Check:
    """Compare with a server's clock read between `sent` and `received` (its own time, ms)."""
    if not isinstance(remote_ms, int):
        return Check("clock", "SKIP", f"{server} did not tell its time")
    remote = datetime.fromtimestamp(remote_ms / 1000, UTC)
    round_trip = (received - sent).total_seconds()
    skew = (sent + (received - sent) / 2 - remote).total_seconds()
    # The server read its clock somewhere in the round trip: only what exceeds half of it counts.
    magnitude = max(abs(skew) - round_trip / 2, 0.0)
    detail = f"local clock {skew:+.3f} s against {server} (round trip {round_trip:.3f} s)"
    fix = "run chrony or systemd-timesyncd against the same time source on every host"
    if magnitude > SKEW_FAIL_SECONDS:
        return Check("clock", "FAIL", detail, fix)
    if magnitude > SKEW_WARN_SECONDS:
        return Check("clock", "WARN", detail, fix)
    return Check("clock", "OK", detail)


async def check_kafka(bootstrap: str) -> Check:
    from aiokafka.admin import AIOKafkaAdminClient

    fix = f"start Kafka or correct bus (SOC_BUS=kafka://{bootstrap})"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await asyncio.wait_for(admin.start(), REMOTE_TIMEOUT)
        cluster = await asyncio.wait_for(admin.describe_cluster(), REMOTE_TIMEOUT)
    except Exception as exc:
        return Check("bus", "FAIL", f"kafka {bootstrap}: unreachable ({exc!r})", fix)
    finally:
        await admin.close()
    brokers = cluster.get("brokers", [])
    return Check(
        "bus",
        "OK",
        f"kafka {bootstrap}: {len(brokers)} broker(s), controller {cluster.get('controller_id')}",
    )


def check_packages(root: Path) -> Check:
    """Installed Python packages against the pinned constraints the release was tested with."""
    constraints = root / "constraints.txt"
    if not constraints.exists():
        return Check("versions.python", "SKIP", "no constraints.txt beside the package")
    wrong: list[str] = []
    missing: list[str] = []
    for line in constraints.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if not match:
            continue
        name, wanted = match.groups()
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if found != wanted:
            wrong.append(f"{name} {found} (tested: {wanted})")
    python = ".".join(map(str, sys.version_info[:3]))
    if wrong:
        return Check(
            "versions.python",
            "WARN",
            f"Python {python}; {len(wrong)} package(s) differ from constraints.txt: "
            + ", ".join(wrong[:8])
            + (" ..." if len(wrong) > 8 else ""),
            "pip install -c constraints.txt -e . (or make install) to get the tested versions",
        )
    note = f"; {len(missing)} optional not installed" if missing else ""
    return Check("versions.python", "OK", f"Python {python}; packages match constraints{note}")


def check_rules(config: Config) -> Check:
    from soc.detect.rules import load_rules, options_from_config

    paths = [Path(p) for p in config.rules.paths]
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        return Check(
            "rules",
            "FAIL",
            "rule path does not exist: " + ", ".join(absent),
            "correct rules.paths (SOC_RULES__PATHS, --rules) or install the rule set there",
        )
    ruleset = load_rules(paths, options_from_config(config.rules))
    detail = (
        f"{ruleset.files} files, {len(ruleset.rules)} rules routed, {len(ruleset.unrouted)}"
        f" unrouted, {len(ruleset.correlations)} correlations, {len(ruleset.problems)} problems"
    )
    if not ruleset.rules and not ruleset.correlations:
        return Check("rules", "FAIL", detail, "no rule would run: check rules.paths")
    if ruleset.problems:
        return Check("rules", "WARN", detail, "`soc rules check` lists each rule that will not run")
    return Check("rules", "OK", detail)


def check_retention(config: Config) -> Check:
    retention = config.retention
    kept = ", ".join(
        f"{name} {days or 'for ever'}"
        for name, days in (
            ("events", retention.events_days),
            ("alerts", retention.alerts_days),
            ("incidents", retention.incidents_days),
        )
    )
    detail = f"{kept} days; legal minimum {retention.legal_minimum_days} days"
    if retention.legal_minimum_days < 365:
        return Check(
            "retention",
            "WARN",
            detail,
            "Decree 53/2022/ND-CP asks 12 months of system logs: lower the minimum only on"
            " written legal advice (docs/operator.md, Retention)",
        )
    return Check("retention", "OK", detail)


def check_netmeta(config: Config) -> Check:
    """Live packet capture, when `netmeta.interface` asks for it."""
    from collectors.netmeta.preflight import capture_problems

    netmeta = config.netmeta
    if not netmeta.interface:
        return Check("netmeta", "SKIP", "no netmeta.interface: the sensor does not capture here")
    problems = capture_problems(netmeta.interface, netmeta.bpf)
    detail = f"interface {netmeta.interface}" + (f", filter {netmeta.bpf!r}" if netmeta.bpf else "")
    if problems:
        return Check("netmeta", "FAIL", f"{detail}: cannot capture", "; ".join(problems))
    return Check("netmeta", "OK", detail)


async def diagnose(options: Options) -> list[Check]:
    try:
        config = load_config(file=options.config_file, environ=options.environ)
    except ConfigError as exc:
        return [
            Check(
                "config",
                "FAIL",
                str(exc),
                "correct the key named above (docs/operator.md, Configuration reference)",
            )
        ]
    origin = options.config_file or os.environ.get("SOC_CONFIG") or "defaults and environment"
    checks = [Check("config", "OK", f"loaded ({origin}); bus={config.bus} store={config.store}")]
    checks += [check_data_dir(config), check_disk(config, options.min_free_gib)]
    if config.bus.startswith("kafka://"):
        checks.append(await check_kafka(config.bus.removeprefix("kafka://").rstrip("/")))
    else:
        checks.append(Check("bus", "OK", "in-process (memory://): nothing to reach"))
    if config.store.startswith("sqlite://"):
        checks.append(check_sqlite(config))
        checks.append(Check("clock", "SKIP", "no server to compare with (embedded deployment)"))
    else:
        checks += await check_elasticsearch(config.store)
    checks.append(check_packages(_project_root()))
    checks.append(await asyncio.to_thread(check_rules, config))
    checks.append(check_retention(config))
    if config.netmeta.interface:
        checks.append(check_netmeta(config))
    return checks


def report(checks: list[Check], out: TextIO, as_json: bool) -> int:
    failed = any(check.status == "FAIL" for check in checks)
    if as_json:
        body = {"ok": not failed, "checks": [asdict(check) for check in checks]}
        out.write(json.dumps(body, ensure_ascii=False, indent=2) + "\n")
    else:
        for check in checks:
            out.write(f"{check.status:<4} {check.name:<22} {check.detail}\n")
            if check.fix and check.status in ("WARN", "FAIL"):
                out.write(f"{'':4} {'':22} fix: {check.fix}\n")
        counts = {s: sum(c.status == s for c in checks) for s in ("OK", "WARN", "FAIL", "SKIP")}
        out.write(", ".join(f"{n} {s}" for s, n in counts.items()) + "\n")
    return 1 if failed else 0
