"""`soc run`: the whole platform in one process.

Start order is downstream first (store, stages, then the API and collectors), so nothing is
received before it can be handled. Stop order is the reverse, and each stage is stopped only once
its upstream has stopped and its input is drained: after SIGTERM every line a sender got onto the
socket ends up in the store before the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sqlite3
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import prometheus_client
import uvicorn

from collectors.netmeta.main import start_sensor
from collectors.syslog.server import SyslogServer
from collectors.syslog.sources import SourceMap
from collectors.syslog.tls import ServerTls
from soc import heap, metrics
from soc.accounts import Accounts
from soc.api.app import create_app
from soc.api.auth import ensure_api_token
from soc.api.ingest import Intake, install_intake
from soc.api.rules import RuleCatalog, effective_options
from soc.bus.base import MATCHES, Bus
from soc.config import ENGINE_STAGES, Address, Config
from soc.detect.rules import RuleSet, load_rules
from soc.detect.stage import CorrelationStage, Detected, Detection, DetectionStage
from soc.incidents.grouping import IncidentStage
from soc.normalize import NormalizeOptions
from soc.normalize.stage import NormalizeStage
from soc.notify.api import attach as attach_notify
from soc.notify.service import Notifier
from soc.retention import run_retention
from soc.stage import Stage, run_stage
from soc.store.writer import StoreWriter
from soc.wiring import is_elasticsearch, make_bus, make_store

log = logging.getLogger("soc.run")


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: `soc run` owns SIGINT/SIGTERM and stops the API
    last, after the pipeline has drained."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Layer:
    """Stages stopped together, after the layer before them has drained."""

    stages: list[Stage]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def load_ruleset(config: Config, overrides: Mapping[str, bool] | None = None) -> RuleSet:
    """The configured rules, with the console's switches (rule id -> enabled) applied."""
    options = effective_options(config, overrides or {})
    ruleset = load_rules([Path(p) for p in config.rules.paths], options)
    metrics.RULES_LOADED.set(len(ruleset.rules))
    metrics.RULES_UNROUTED.set(len(ruleset.unrouted))
    reasons: dict[str, int] = {}
    for problem in ruleset.problems:
        reason = problem.reason.split(":", 1)[0]
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, count in reasons.items():
        metrics.RULES_FAILED.labels(reason).set(count)
    return ruleset


def _bind(address: Address) -> socket.socket:
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((address.host, address.port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


async def _watch_backlog(bus: Bus, topics: list[str]) -> None:
    backlog = getattr(bus, "backlog", None)
    lags = getattr(bus, "lags", None)
    while True:
        if backlog is not None:
            for topic in topics:
                metrics.BUS_BACKLOG.labels(topic).set(backlog(topic))
        if lags is not None:
            for group, topic, partition, lag in lags():
                metrics.BUS_LAG.labels(group, topic, str(partition)).set(lag)
        await asyncio.sleep(1.0)


PARTS = frozenset({"collector", "engine", "api", "notifier"})


async def run_embedded(config: Config) -> int:
    """`soc run`: every part in this process."""
    return await run_parts(config, PARTS)


async def run_parts(config: Config, parts: frozenset[str]) -> int:
    """Run some parts of the platform: `collector` (syslog in), `engine` (normalize, detect,
    correlate, index) and `api`. With every part here (`soc run`), a stop drains each stage in
    turn, so that all received lines reach the store; an engine alone stops after its current
    batch instead, since its upstream lives on in other processes."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    bus = make_bus(config)
    store = make_store(config)
    await bus.start()
    await store.open()
    batch = config.pipeline.batch_size
    linger = config.pipeline.linger_ms / 1000
    drain = parts == PARTS
    layers: list[_Layer] = []
    #: Set by each stage once it consumes (see `_until_joined`).
    joined: list[asyncio.Event] = []
    detection_stages: list[DetectionStage | CorrelationStage] = []
    accounts = open_accounts(config) if parts & {"engine", "api"} else None
    if "engine" in parts:
        stages = set(config.pipeline.stages)
        detection: Detection | None = None
        if stages & {"detect", "correlate"}:
            ruleset = load_ruleset(config, accounts.rule_overrides() if accounts else None)
            log.info(
                "rules loaded count=%d unrouted=%d problems=%d correlations=%d",
                len(ruleset.rules), len(ruleset.unrouted), len(ruleset.problems),
                len(ruleset.correlations),
            )  # fmt: skip
            detection = Detection.from_rules(ruleset)
            heap.settle()
        if detection is not None and "detect" in stages:
            detection_stages.append(DetectionStage(bus, detection))
        if detection is not None and "correlate" in stages:
            # The correlator's windows survive a restart on Kafka and on the journaled
            # in-process bus: it commits only up to the oldest match they may still need, and
            # its successor reads those again.
            replay = config.bus.startswith("kafka://") or MATCHES in getattr(bus, "durable", ())
            detection_stages.append(
                CorrelationStage(
                    bus,
                    detection,
                    replay=replay,
                    # The in-process bus holds what is not committed in memory, up to its
                    # capacity.
                    max_held=None
                    if config.bus.startswith("kafka://")
                    else config.pipeline.bus_capacity // 2,
                )
            )
        options = NormalizeOptions(timezone=ZoneInfo(config.syslog.timezone))
        by_name: dict[str, Stage] = {stage.name: stage for stage in detection_stages}
        chained = None
        if {"normalize", "detect"} <= stages:
            # Chained: events are detected as they are normalized, not read back from
            # soc.events (see NormalizeStage); the detect group is not joined.
            chained = _Chain(cast(DetectionStage, by_name.pop("detect")))
        if "normalize" in stages:
            # Hints only pay where the indexer reads bytes (Kafka) and stores them as they are
            # (Elasticsearch); the in-process bus hands it the events themselves.
            hints = config.bus.startswith("kafka://") and is_elasticsearch(config)
            by_name["normalize"] = NormalizeStage(bus, options, then=chained, hints=hints)
        if "index" in stages:
            by_name["index"] = StoreWriter(store, "events")
        if "incidents" in stages:
            by_name["incidents"] = IncidentStage(store, config.incidents, bus)
        # Layers in the order records flow, each stopped after the one before has drained;
        # only the stages this process consumes for (pipeline.stages, less the chained one).
        for names in (("normalize",), ("detect", "index"), ("correlate",), ("incidents",)):
            if chosen := [by_name[name] for name in names if name in by_name]:
                layers.append(_Layer(chosen))
        log.info(
            "engine stages=%s%s nice=%d",
            ",".join(n for n in ENGINE_STAGES if n in stages),
            " (detect chained to normalize)" if chained else "",
            os.getpriority(os.PRIO_PROCESS, 0),
        )
        for layer in layers:
            for stage in layer.stages:
                joined.append(asyncio.Event())
                layer.tasks.append(
                    asyncio.create_task(
                        run_stage(
                            bus, stage, layer.stop, batch, drain=drain, linger=linger,
                            joined=joined[-1],
                        ),
                        name=stage.name,
                    )
                )  # fmt: skip
    notifier = Notifier(config) if "notifier" in parts else None
    if notifier is not None:
        # Last layer: stopped after everything upstream of soc.incidents has drained.
        notifier.start()
        layers.append(_Layer([notifier.stage]))
        joined.append(asyncio.Event())
        layers[-1].tasks.append(asyncio.create_task(
            run_stage(
                bus, notifier.stage, layers[-1].stop, batch, drain=drain, linger=linger,
                joined=joined[-1],
            ),
            name="notify"
        ))  # fmt: skip
    api: _ApiServer | None = None
    api_task: asyncio.Task[None] | None = None
    addresses: list[str] = []
    intake: Intake | None = None
    if "api" in parts:
        token, generated = ensure_api_token(config.auth.api_token, config.data_dir)
        if generated:
            log.warning(
                "generated an API token (shown once; kept in %s): %s",
                config.data_dir / "secrets" / "api_token",
                token,
            )
        assert accounts is not None
        ensure_first_admin(accounts)
        http_socket = _bind(config.http.listen)

        def current_rules() -> RuleSet | None:
            return detection_stages[0].detection.rules if detection_stages else None

        async def rules_changed() -> None:
            if detection_stages:
                await _reload_rules(config, detection_stages, accounts)

        catalog = RuleCatalog(config, accounts, current=current_rules, on_change=rules_changed)
        app = create_app(store, token, config=config, accounts=accounts, bus=bus, rules=catalog)
        if notifier is not None:
            attach_notify(app, notifier.outbox, config.notify)
        intake = install_intake(app, bus, config.sources, config.intake)
        api = _ApiServer(uvicorn.Config(app, log_config=None, access_log=False, lifespan="off"))
        api_task = asyncio.create_task(api.serve(sockets=[http_socket]), name="api")
        host, port = http_socket.getsockname()[:2]
        http = Address(str(host), int(port))
        addresses.append(f"console=http://{http}/ api=http://{http}/api/v1 http={http}")
    syslog: SyslogServer | None = None
    if "collector" in parts:
        syslog = SyslogServer(
            bus,
            config.syslog.listen,
            udp=config.syslog.udp,
            tcp=config.syslog.tcp,
            max_message_bytes=config.syslog.max_message_bytes,
            udp_queue=config.syslog.udp_queue,
            udp_receive_buffer=config.syslog.udp_receive_buffer,
            tls=ServerTls(config.syslog) if config.syslog.tls else None,
            tls_listen=config.syslog.tls_listen,
            sources=SourceMap(config.sources),
            max_connections=config.syslog.max_connections,
            batch_size=batch,
        )
        await syslog.start()
        addresses += [f"syslog_{name}={address}" for name, address in syslog.addresses.items()]
    sensor_stop = asyncio.Event()
    sensor_tasks: list[asyncio.Task[None]] = []
    if {"collector", "engine"} <= parts and config.netmeta.interface:
        sensor_tasks.append(await start_sensor(config, bus, sensor_stop))
        addresses.append(f"netmeta={config.netmeta.interface}")
    backlog_task = asyncio.create_task(
        _watch_backlog(bus, ["soc.raw", "soc.events", "soc.matches", "soc.alerts"])
    )
    metrics_server = None
    if "api" not in parts and config.metrics.enabled:
        listen = config.metrics.listen
        try:
            metrics_server, _ = prometheus_client.start_http_server(listen.port, listen.host)
            addresses.append(f"metrics=http://{listen}/metrics")
        except OSError as exc:
            # A second part on the same host with the same port: it still runs, unobserved,
            # and says so (set metrics.listen per part).
            log.error("metrics not served listen=%s error=%s", listen, exc)
    retention_stop = asyncio.Event()
    retention_task = (
        asyncio.create_task(run_retention(store, config.retention, retention_stop))
        if parts & {"engine", "api"}
        else None
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    reloads: set[asyncio.Task[None]] = set()

    def reload() -> None:
        task = asyncio.create_task(_reload_rules(config, detection_stages, accounts))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    watch_task: asyncio.Task[None] | None = None
    if detection_stages:
        loop.add_signal_handler(signal.SIGHUP, reload)
        if accounts is not None and "api" not in parts:
            # A separate engine learns of the console's rule switches by polling the accounts
            # database it shares with the API (same data directory or auth.database).
            watch_task = asyncio.create_task(_watch_overrides(config, detection_stages, accounts))
    # Ready means consuming: every stage a member of its group (a broker still starting, or
    # away, holds this back; a stop request does not wait for it).
    await _until_joined(joined, stop)
    # Whatever the parts, what was built to start (imported modules, the app, rules) lives as
    # long as the process: out of the collector's sight. A collector or API process that did
    # not do this spent 6 us an event in full collections re-walking its imports.
    heap.settle()
    log.info(
        "ready parts=%s %s bus=%s store=%s data_dir=%s",
        ",".join(sorted(parts)), " ".join(addresses), config.bus, config.store, config.data_dir,
    )  # fmt: skip

    stage_tasks = [task for layer in layers for task in layer.tasks]
    watched = [*stage_tasks, *([api_task] if api_task else [])]
    watched += sensor_tasks
    stopped_by = await _wait_for_stop(stop, watched)
    log.info("stopping reason=%s", stopped_by)
    if syslog is not None:
        await syslog.stop()
    sensor_stop.set()
    await asyncio.gather(*sensor_tasks, return_exceptions=True)
    if intake is not None:
        await intake.close()
    for layer in layers:
        layer.stop.set()
        await asyncio.gather(*layer.tasks, return_exceptions=True)
    if notifier is not None:
        await notifier.stop()
    backlog_task.cancel()
    if watch_task is not None:
        watch_task.cancel()
    retention_stop.set()
    if retention_task is not None:
        await asyncio.gather(retention_task, return_exceptions=True)
    if metrics_server is not None:
        metrics_server.shutdown()
    if api is not None and api_task is not None:
        api.should_exit = True
        await asyncio.gather(api_task, return_exceptions=True)
    await bus.close()
    await store.close()
    if accounts is not None:
        accounts.close()
    heap.release()
    failed = [task for task in stage_tasks if task.done() and task.exception() is not None]
    for task in failed:
        log.error("stage failed stage=%s error=%r", task.get_name(), task.exception())
    log.info("stopped cleanly" if not failed else "stopped with failed stages")
    return 0 if not failed and stopped_by == "signal" else 1


def open_accounts(config: Config) -> Accounts:
    path = Path(config.auth.database) if config.auth.database else config.data_dir / "accounts.db"
    return Accounts(
        path,
        max_failed_logins=config.auth.max_failed_logins,
        lockout_seconds=config.auth.lockout_seconds,
    )


def ensure_first_admin(accounts: Accounts) -> None:
    """The first start makes the first administrator, `admin`: with `SOC_ADMIN_PASSWORD` if
    set, otherwise a generated password printed once. Never a fixed default."""
    if accounts.user_count():
        return
    password = os.environ.get("SOC_ADMIN_PASSWORD", "")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(18)
    accounts.add_user("admin", password, "admin", None, "Administrator")
    if generated:
        # Printed, not logged: it must reach the operator once and never a log collector.
        print(
            f"soc: created the first administrator 'admin' with password: {password}\n"
            "soc: (shown once; change it with `soc users passwd admin`)",
            file=sys.stderr,
            flush=True,
        )
    else:
        log.info("created the first administrator 'admin' from SOC_ADMIN_PASSWORD")


class _Chain:
    """Detection as the normalizing stage's next step, counted as the detect stage's records."""

    def __init__(self, detection: DetectionStage) -> None:
        self._detection = detection

    def output(self) -> Detected:
        return self._detection.output()

    def evaluate(
        self,
        events: Sequence[dict[str, Any]],
        output: Detected,
        encoded: Sequence[bytes | None] | None = None,
    ) -> None:
        self._detection.evaluate(events, output, encoded)

    async def publish(self, output: Detected) -> None:
        await self._detection.publish(output)
        metrics.STAGE_RECORDS.labels(self._detection.name).inc(output.events)


async def _watch_overrides(
    config: Config,
    stages: list[DetectionStage | CorrelationStage],
    accounts: Accounts,
    interval: float = 15.0,
) -> None:
    seen = accounts.rule_overrides()
    while True:
        await asyncio.sleep(interval)
        try:
            current = await asyncio.to_thread(accounts.rule_overrides)
        except sqlite3.Error as exc:
            log.warning("cannot read rule switches error=%s", exc)
            continue
        if current != seen:
            seen = current
            await _reload_rules(config, stages, accounts)


async def _reload_rules(
    config: Config,
    stages: list[DetectionStage | CorrelationStage],
    accounts: Accounts | None = None,
) -> None:
    """SIGHUP (or a rule switched in the console): load the rules again and swap them in between
    two batches. A rule set that fails to load as a whole leaves the running one in place;
    correlation windows restart."""
    log.info("reloading rules")
    overrides = accounts.rule_overrides() if accounts is not None else None
    try:
        ruleset = await asyncio.to_thread(load_ruleset, config, overrides)
    except (OSError, ValueError) as exc:
        log.error("rule reload failed, keeping the loaded rules reason=%s", exc)
        return
    detection = Detection.from_rules(ruleset)
    for stage in stages:
        stage.detection = detection
    log.info(
        "rules reloaded count=%d unrouted=%d problems=%d correlations=%d",
        len(ruleset.rules), len(ruleset.unrouted), len(ruleset.problems),
        len(detection.correlations.correlations),
    )  # fmt: skip
    heap.resettle()  # the old rule set is garbage now; the new one lives on


async def _until_joined(joined: list[asyncio.Event], stop: asyncio.Event) -> None:
    """Until every stage has joined its group, or a stop is asked for."""
    if all(event.is_set() for event in joined):
        return
    waits = [asyncio.create_task(event.wait()) for event in joined]
    stopping = asyncio.create_task(stop.wait())
    everyone = asyncio.create_task(asyncio.wait(waits))
    try:
        await asyncio.wait({everyone, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (*waits, everyone, stopping):
            task.cancel()


async def _wait_for_stop(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> str:
    """Wait for a signal, or for a part that should run forever to end (a crash)."""
    waiter = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if waiter in done:
        return "signal"
    waiter.cancel()
    for task in done:
        if task.exception() is not None:
            log.error("part crashed part=%s error=%r", task.get_name(), task.exception())
    return "crash"
