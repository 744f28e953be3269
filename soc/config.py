"""Configuration: defaults, then `soc.yaml`, then `SOC_...` environment variables, then flags.

Every layer is checked against one typed schema (the dataclasses below), so a misspelt key or a
wrong value stops the program with a message that names the key and where it came from, instead
of being ignored and surprising an operator at three in the morning.

Environment variables: `SOC_DATA_DIR`, `SOC_BUS`, `SOC_STORE`; nested keys with a double
underscore (`SOC_SYSLOG__TIMEZONE`). A section with a `listen` address also takes the address as
its whole value (`SOC_HTTP=0.0.0.0:8000`, `--syslog 0.0.0.0:514`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, cast, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

ENV_PREFIX = "SOC_"
DEFAULT_CONFIG_FILE = "soc.yaml"


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it and its origin."""


@dataclass(frozen=True, slots=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> Address:
    """`HOST:PORT` or `[IPv6]:PORT`; port 0 asks the system for a free one."""
    match = re.fullmatch(
        r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<p6>\d+)|(?P<host>[^:\s]+):(?P<port>\d+)", text
    )
    if not match:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    host = match["v6"] or match["host"]
    port = int(match["p6"] or match["port"])
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range 0-65535")
    return Address(host, port)


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: Address = Address("127.0.0.1", 8000)


@dataclass(frozen=True, slots=True)
class SyslogConfig:
    listen: Address = Address("127.0.0.1", 5514)
    udp: bool = True
    tcp: bool = True
    #: Longer messages are truncated and flagged rather than refused (RFC 5425 asks for 2 KiB
    #: at least; appliances send far more).
    max_message_bytes: int = 65536
    #: RFC 3164 timestamps carry no zone; agencies' servers log in local time.
    timezone: str = "Asia/Ho_Chi_Minh"
    #: Datagrams waiting to be published; past this UDP datagrams are dropped and counted.
    udp_queue: int = 100_000
    #: Kernel receive buffer for the UDP socket, bytes: absorbs bursts while the loop is busy.
    udp_receive_buffer: int = 32 * 1024 * 1024
    #: Syslog over TLS (RFC 5425) on a listener of its own; PEM certificate and key files.
    tls: bool = False
    tls_listen: Address = Address("127.0.0.1", 6514)
    tls_cert: str = ""
    tls_key: str = ""
    #: PEM CA bundle client certificates must chain to; empty: clients are not asked for one.
    tls_client_ca: str = ""
    #: Refuse senders without a client certificate signed by `tls_client_ca`.
    tls_require_client_cert: bool = False
    #: Open TCP and TLS connections at most; past it new ones are refused and counted. Keep the
    #: process's open-file limit above it.
    max_connections: int = 4096


@dataclass(frozen=True, slots=True)
class RulesConfig:
    #: Rule files or directories; `pipelines/*.yml` inside a directory map its rules' fields.
    paths: tuple[str, ...] = ("rules",)
    #: Installed pySigma pipelines (by name) or YAML files, applied to every rule.
    pipelines: tuple[str, ...] = ("ecs_windows",)
    #: Log-source routes (YAML); empty: the packaged `soc/detect/logsources.yml`.
    logsources: str = ""
    #: YAML mapping placeholder name -> values, for `|expand` (`%admins%`).
    placeholders: str = ""
    disabled_ids: tuple[str, ...] = ()
    #: Glob patterns over rule file paths.
    disabled_paths: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ("stable", "test", "experimental")
    min_level: str = "informational"


@dataclass(frozen=True, slots=True)
class AuthConfig:
    #: A machine token for `/api/` with the admin role over every agency (scripts, the CLI).
    #: Empty: generated at first start and kept, 0600, under the data dir.
    api_token: str = ""
    #: Users, sessions and API keys; empty: `<data_dir>/accounts.db`.
    database: str = ""
    #: Lifetime of a bearer token from `/api/v1/auth/token` and of a console session.
    token_ttl_seconds: int = 8 * 3600
    session_ttl_seconds: int = 12 * 3600
    #: Consecutive failed logins that lock an account, and for how long.
    max_failed_logins: int = 5
    lockout_seconds: int = 900
    #: Login attempts per client address per minute, before 429.
    login_attempts_per_minute: int = 20
    #: Mark the session cookie Secure (set this when the console is served over HTTPS).
    cookie_secure: bool = False


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str = "info"
    format: str = "text"


#: The engine's stages, in the order records flow through them (DESIGN.md).
ENGINE_STAGES = ("normalize", "detect", "index", "correlate", "incidents")


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    #: Records a stage takes, handles and commits at once. Every batch costs the same round trips
    #: (a fetch, a bulk request, a commit, the incident lookups) whatever its size: 5000 rather
    #: than 2000 took 9% off the CPU an event through Kafka and Elasticsearch (bench/distributed).
    batch_size: int = 5000
    #: Records the in-process bus holds per topic before publishers wait (backpressure).
    bus_capacity: int = 20_000
    #: Partitions of each Kafka topic (the most consumers a stage's group can use).
    partitions: int = 4
    #: How long a stage lets a batch smaller than `batch_size` wait for more records (ms).
    linger_ms: int = 0
    #: The engine's stages this process runs (`soc engine`). An engine that is one process
    #: is held to one core; on Kafka its stages can be spread over processes (for example
    #: `normalize,index` in one and `detect,correlate,incidents` in another), each stage one
    #: consumer group whatever process its members live in. Every stage must run somewhere.
    stages: tuple[str, ...] = ENGINE_STAGES
    #: The niceness (0-19, as `nice -n`) an engine process runs at: above 0, it yields the CPU
    #: to the other processes of the host whenever they want it. For the process of work that
    #: can wait, such as `index` alone (events searchable a little later under load, alerts not).
    #: Held at 10,000 events/s on 2 cores beside Kafka and Elasticsearch, `index` apart at 10
    #: next to `normalize,detect` and `correlate,incidents` kept p99 of receipt to alert
    #: searchable at 0.96-1.47 s in eleven runs, against 1.06-1.93 s with `index` beside
    #: `correlate,incidents` at 0. Only ever raised: a process started nicer keeps its own.
    nice: int = 0


@dataclass(frozen=True, slots=True)
class IntakeConfig:
    """HTTP intake `POST /api/v1/ingest` (issue 5). Past a limit the request is refused whole
    (413 naming the limit), so a sender splits it rather than losing part of it."""

    #: Request body as sent (compressed or not), bytes.
    max_body_bytes: int = 16 * 1024 * 1024
    #: Body after gzip decompression, bytes: the guard against gzip bombs.
    max_decompressed_bytes: int = 64 * 1024 * 1024
    #: Lines (NDJSON) or items (JSON array) in one request.
    max_lines: int = 20_000
    #: Longer lines are cut here and flagged `truncated`, as syslog does.
    max_line_bytes: int = 1024 * 1024
    #: A request whose lines the bus has not acknowledged by then is answered 503 (the sender
    #: retries; ids make a partial publish harmless) rather than held while Kafka is away.
    publish_timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class AgentInput:
    """Files the agent tails: glob patterns, their format and how lines join into records."""

    paths: tuple[str, ...] = ()
    #: Glob patterns of files to leave alone (rotated and compressed copies: `*.gz`).
    exclude: tuple[str, ...] = ()
    #: Raw-record format (`syslog`, `nginx`, `iis`, `auditd`, `json`, ...); empty: syslog.
    format: str = ""
    #: Where to start in files already there when the agent first starts with no saved offset
    #: for them: `beginning`, or `end` (skip the history). Files that appear later are always
    #: read from their beginning.
    start_at: str = "beginning"
    #: Regex a record's first line matches; other lines join the record before them.
    multiline_start: str = ""
    multiline_max_lines: int = 500
    #: A joined record waits this long for more lines before it is sent.
    multiline_timeout_ms: int = 2000
    #: `host.name` of these records; empty: this machine's name.
    host_name: str = ""
    #: Extra ECS fields as `dotted.name=value` (`service.name=portal`).
    fields: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """`soc agent`: files to tail and where to push them (issue 5)."""

    #: The intake, `https://soc.example:8000/api/v1/ingest`.
    url: str = ""
    #: The source's intake token, or a file holding it (kept out of the YAML).
    token: str = ""
    token_file: str = ""
    #: Offsets and the spool; empty: `<data_dir>/agent`.
    state_dir: str = ""
    files: tuple[AgentInput, ...] = ()
    batch_lines: int = 2000
    #: Uncompressed bytes of one batch.
    batch_bytes: int = 1024 * 1024
    #: A batch is sent once this old even if not full.
    batch_wait_ms: int = 1000
    #: Disk the spool may use while the intake is unreachable; when full, reading pauses.
    spool_max_bytes: int = 256 * 1024 * 1024
    scan_interval_ms: int = 1000
    #: A file renamed away (rotated) or deleted is closed after this long without growth.
    close_inactive_ms: int = 5000
    #: Close a file still under a glob after this long idle and read to its end, reopening it
    #: when it grows (for hosts with thousands of files); 0: keep it open. Lines a writer adds
    #: after renaming a released file are read only if a glob covers the rotated name.
    release_idle_ms: int = 0
    max_line_bytes: int = 1024 * 1024
    #: Ceiling of the exponential backoff between retries.
    retry_max_ms: int = 30_000
    timeout_ms: int = 30_000
    #: CA bundle (PEM) to verify the intake's certificate; `verify_tls: false` only for tests.
    ca_file: str = ""
    verify_tls: bool = True


@dataclass(frozen=True, slots=True)
class NetmetaConfig:
    """`soc collector netmeta`: the packet-metadata sensor (issue 5)."""

    #: Interface to capture on (live mode) and its BPF filter (compiled by libpcap).
    interface: str = ""
    bpf: str = ""
    #: observer.name on every record and part of every record id; empty: the host name.
    sensor_id: str = ""
    #: The configured source whose agency owns everything this sensor sees; empty: the agency
    #: of the source whose `networks` hold the flow's source, else its destination address.
    source_id: str = ""
    #: Seconds, in packet time: a flow without packets for `idle_timeout` ends; one longer than
    #: `active_timeout` is reported in pieces; after FIN both ways or RST, `closed_timeout`
    #: more seconds take in the trailing ACKs.
    idle_timeout: int = 30
    active_timeout: int = 1800
    closed_timeout: int = 2
    #: Flows held at once; past it the least recently seen is reported early and counted.
    max_flows: int = 100_000
    #: Records waiting for the bus in live mode; past it they are dropped and counted.
    queue: int = 100_000


@dataclass(frozen=True, slots=True)
class IncidentsConfig:
    """Grouping alerts into incidents."""

    #: Alert fields whose values, with the agency, make an incident's key: alerts that agree
    #: on them within `window_seconds` of the incident's last alert join it. A correlation's
    #: alert adds its group-by values.
    group_by: tuple[str, ...] = ("rule.id", "host.name")
    window_seconds: int = 24 * 3600
    #: Who the platform reports as (STIX exports, monthly reports): the province's SOC.
    producer: str = "SOC"


@dataclass(frozen=True, slots=True)
class NotifyParamConfig:
    """One parameter of an approved Zalo ZNS template: `value` names an incident fact
    (title, severity, agency, rule, host, alert_count, incident_id, first_seen, last_seen, url,
    summary) and is cut to `max_length` characters, the length Zalo approved for it."""

    name: str = ""
    value: str = ""
    max_length: int = 30


@dataclass(frozen=True, slots=True)
class NotifyChannelConfig:
    """One way out. `type`: zalo_oa, zalo_zns, email, webhook or telegram. `base_url` points at
    the provider (or a proxy); email takes `smtp://host:587` (STARTTLS required),
    `smtps://host:465` (implicit TLS) or `smtp+insecure://host:25` (no TLS, opt-in)."""

    name: str = ""
    type: str = ""
    base_url: str = ""
    timeout_seconds: int = 10
    #: Zalo: the app's id and secret key, tokens (refreshed and kept in the outbox database).
    app_id: str = ""
    secret_key: str = ""
    access_token: str = ""
    refresh_token: str = ""
    oauth_url: str = "https://oauth.zaloapp.com"
    #: Zalo ZNS: the approved template and how its parameters are filled.
    template_id: str = ""
    template_params: tuple[NotifyParamConfig, ...] = ()
    development: bool = False
    #: Email.
    username: str = ""
    password: str = ""
    sender: str = ""
    #: Extra CA certificates (PEM) to trust, e.g. an internal relay's.
    ca_file: str = ""
    #: Webhook: HMAC-SHA256 key of `X-SOC-Signature`.
    secret: str = ""
    #: Telegram.
    bot_token: str = ""


@dataclass(frozen=True, slots=True)
class NotifyRecipientConfig:
    """`to`: Zalo user id, phone number, email address, Telegram chat id, or for a webhook
    a URL or a path under the channel's base URL (empty: the base URL)."""

    channel: str = ""
    to: str = ""
    #: vi or en; empty: the route's.
    language: str = ""


@dataclass(frozen=True, slots=True)
class NotifyRouteConfig:
    """Which incidents reach whom. Every condition given must hold; empty lists match all."""

    name: str = ""
    min_severity: str = "high"
    agencies: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    #: `HH:MM-HH:MM` in notify.timezone (may wrap past midnight); empty: all day.
    hours: str = ""
    #: mon..sun; empty: every day.
    days: tuple[str, ...] = ()
    #: Incident changes that notify (created, grown, status, assigned, commented, reopened).
    changes: tuple[str, ...] = ("created", "grown", "reopened")
    language: str = "vi"
    recipients: tuple[NotifyRecipientConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Notification channels, routes and the outbox (issue 8)."""

    #: Where links in messages point: `{console_url}/#/incidents/{id}`.
    console_url: str = "http://127.0.0.1:8000"
    timezone: str = "Asia/Ho_Chi_Minh"
    #: At most one message per incident, channel and recipient per window; the rest is a digest.
    window_seconds: int = 600
    #: Outbox database; empty: `<data_dir>/notify/outbox.db`.
    outbox: str = ""
    #: Retries: full-jitter exponential backoff from `backoff_ms` up to `backoff_max_ms`;
    #: after `max_attempts` or `max_age_seconds` a message is parked (kept, retryable).
    backoff_ms: int = 1000
    backoff_max_ms: int = 300_000
    #: 300 attempts under a 5-minute cap is about half a day: a long provider outage ends in
    #: delivery, not in a pile of parked messages.
    max_attempts: int = 300
    max_age_seconds: int = 86_400
    #: Messages sent at the same time.
    concurrency: int = 16
    channels: tuple[NotifyChannelConfig, ...] = ()
    routes: tuple[NotifyRouteConfig, ...] = ()


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    """How long events, alerts and incidents are kept (issue 9). Days; 0 keeps for ever. A period
    shorter than `legal_minimum_days` is refused at start (docs/operator.md, "Retention")."""

    events_days: int = 365
    alerts_days: int = 730
    #: Incidents and their audit trail.
    incidents_days: int = 1825
    #: Decree 53/2022/ND-CP keeps system logs for at least 12 months.
    legal_minimum_days: int = 365
    interval_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    """The analyst web console (issue 7)."""


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """`/metrics` of a part that serves no API (engine, collectors, notifier) for Prometheus;
    the API and `soc run` serve it on `http.listen`."""

    listen: Address = Address("127.0.0.1", 9464)
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One sender of records and the agency (`organization.id`) that owns it. Syslog senders are
    recognised by address (`networks`: addresses or CIDRs); agents and other HTTP pushers by
    their intake token, given as its SHA-256 hex digest (`token_sha256`) so that the
    configuration file holds no usable secret (`token` in clear is accepted too)."""

    id: str = ""
    agency: str = ""
    name: str = ""
    networks: tuple[str, ...] = ()
    token_sha256: str = ""
    token: str = ""


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("data")
    bus: str = "memory://"
    store: str = "sqlite://"
    #: Prefix of Kafka topics and groups and of Elasticsearch indices, so that several
    #: platforms (a test, a staging copy) can share one cluster.
    namespace: str = ""
    http: HttpConfig = field(default_factory=HttpConfig)
    syslog: SyslogConfig = field(default_factory=SyslogConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    log: LogConfig = field(default_factory=LogConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    #: Known senders and their agencies (syslog by address, HTTP intake by token).
    sources: tuple[SourceConfig, ...] = ()
    intake: IntakeConfig = field(default_factory=IntakeConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    netmeta: NetmetaConfig = field(default_factory=NetmetaConfig)
    incidents: IncidentsConfig = field(default_factory=IncidentsConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def sqlite_path(self) -> Path:
        """`sqlite://` keeps the database in the data dir; `sqlite:///abs/path.db` elsewhere."""
        rest = self.store.removeprefix("sqlite://")
        return Path(rest) if rest else self.data_dir / "soc.db"


_CHOICES: dict[str, tuple[str, ...]] = {
    "log.level": ("debug", "info", "warning", "error"),
    "log.format": ("text", "json"),
}
_URL_SCHEMES: dict[str, tuple[str, ...]] = {
    "bus": ("memory", "kafka"),
    "store": ("sqlite", "http", "https"),
}


def _coerce(value: Any, target: Any, key: str) -> Any:
    """Turn a YAML or environment value into the schema's type, or say why it cannot be."""
    origin = get_origin(target)
    if origin in (Union, types.UnionType):
        raise ConfigError(f"{key}: union types are not supported in the schema")
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in {
            "1",
            "true",
            "yes",
            "on",
            "0",
            "false",
            "no",
            "off",
        }:
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if target is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if number < 0:
            raise ConfigError(f"{key}: must not be negative, got {number}")
        return number
    if target is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__}")
        return str(value)
    if target is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{key}: expected a path, got {value!r}")
        return Path(value)
    if target is Address:
        if isinstance(value, Address):
            return value
        try:
            return parse_address(str(value))
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    if origin is tuple:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_type, _) = get_args(target)
        if dataclasses.is_dataclass(item_type):
            items = []
            for i, item in enumerate(value):
                if not isinstance(item, Mapping):
                    raise ConfigError(f"{key}[{i}]: expected a mapping, got {item!r}")
                items.append(_build(cast(type[Any], item_type), item, f"{key}[{i}]."))
            return tuple(items)
        return tuple(_coerce(item, item_type, f"{key}[{i}]") for i, item in enumerate(value))
    raise ConfigError(f"{key}: unsupported schema type {target!r}")


def _build(cls: type[Any], values: Mapping[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        if name not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"unknown key {key!r} (known here: {known})")
        target = hints[name]
        if dataclasses.is_dataclass(target) and target is not Address:
            if not isinstance(value, Mapping):
                if "listen" in {f.name for f in dataclasses.fields(target)}:
                    value = {"listen": value}
                else:
                    raise ConfigError(f"{key}: expected a mapping, got {value!r}")
            kwargs[name] = _build(cast(type[Any], target), value, f"{key}.")
        else:
            kwargs[name] = _coerce(value, target, key)
    return cls(**kwargs)


def _merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        elif isinstance(value, Mapping) and isinstance(merged.get(key), str):
            merged[key] = _merge({"listen": merged[key]}, value)
        elif isinstance(merged.get(key), Mapping) and not isinstance(value, Mapping):
            merged[key] = _merge(dict(merged[key]), {"listen": value})
        else:
            merged[key] = value
    return merged


def _env_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name in _ENV_NOT_CONFIG:
            continue
        path = name[len(ENV_PREFIX) :].lower().split("__")
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"environment variable {name} conflicts with another SOC_ variable"
                )
        node[path[-1]] = value
    return layer


#: Variables with the prefix that are read elsewhere, not configuration keys.
_ENV_NOT_CONFIG = frozenset({"SOC_CONFIG", "SOC_SIGMA_PATH", "SOC_ADMIN_PASSWORD"})


def _file_layer(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return loaded


def _validate(config: Config) -> None:
    for key, allowed in _CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ConfigError(f"{key}: expected one of {', '.join(allowed)}, got {value!r}")
    for key, schemes in _URL_SCHEMES.items():
        url = getattr(config, key)
        scheme = url.split("://", 1)[0] if "://" in url else ""
        if scheme not in schemes:
            raise ConfigError(
                f"{key}: unsupported URL {url!r} (supported: "
                + ", ".join(f"{s}://" for s in schemes)
                + ")"
            )
    levels = ("informational", "low", "medium", "high", "critical")
    if config.rules.min_level not in levels:
        raise ConfigError(f"rules.min_level: expected one of {', '.join(levels)}")
    known = {"stable", "test", "experimental", "deprecated", "unsupported"}
    if unknown := set(config.rules.statuses) - known:
        raise ConfigError(f"rules.statuses: unknown status {sorted(unknown)[0]!r}")
    try:
        ZoneInfo(config.syslog.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"syslog.timezone: unknown time zone {config.syslog.timezone!r}"
        ) from None
    if config.namespace and not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", config.namespace):
        raise ConfigError(
            "namespace: lowercase letters, digits, '-' and '_' only (it prefixes index names)"
        )
    if config.syslog.max_message_bytes < 480:
        raise ConfigError("syslog.max_message_bytes: must be at least 480 (RFC 5426)")
    if config.syslog.max_connections < 1:
        raise ConfigError("syslog.max_connections: must be at least 1")
    if config.syslog.tls:
        syslog = config.syslog
        if syslog.tcp and syslog.tls_listen == syslog.listen and syslog.listen.port != 0:
            raise ConfigError(
                f"syslog.tls_listen: {syslog.tls_listen} is syslog.listen, where plain TCP "
                "listens; give TLS a port of its own (6514 by RFC 5425)"
            )
        # The listener's own loader, so that what passes here is exactly what will serve.
        from collectors.syslog.tls import server_context

        server_context(config.syslog)
    if config.pipeline.batch_size < 1:
        raise ConfigError("pipeline.batch_size: must be at least 1")
    if not 0 <= config.pipeline.linger_ms <= 5000:
        raise ConfigError("pipeline.linger_ms: must be between 0 and 5000")
    if not 0 <= config.pipeline.nice <= _MAX_NICE:
        raise ConfigError(
            f"pipeline.nice: must be between 0 and {_MAX_NICE} (a process may lower its own "
            "priority, never raise it)"
        )
    if config.pipeline.bus_capacity < config.pipeline.batch_size:
        raise ConfigError("pipeline.bus_capacity: must be at least pipeline.batch_size")
    stages = config.pipeline.stages
    if strangers := [stage for stage in stages if stage not in ENGINE_STAGES]:
        raise ConfigError(
            f"pipeline.stages: unknown stage {strangers[0]!r} (stages: {', '.join(ENGINE_STAGES)})"
        )
    if not stages:
        raise ConfigError(f"pipeline.stages: name at least one of {', '.join(ENGINE_STAGES)}")
    if len(set(stages)) != len(stages):
        raise ConfigError("pipeline.stages: a stage is named twice")
    if set(stages) != set(ENGINE_STAGES) and not config.bus.startswith("kafka://"):
        # In one process over the in-process bus, a stage left out would stop everything
        # upstream of it once its topic is full.
        raise ConfigError(
            "pipeline.stages: the in-process bus needs every stage in this process; "
            "spreading stages over processes needs bus: kafka://..."
        )
    _validate_retention(config.retention)
    seen: set[str] = set()
    for i, source in enumerate(config.sources):
        if not source.id or not source.agency:
            raise ConfigError(f"sources[{i}]: 'id' and 'agency' are required")
        if source.id in seen:
            raise ConfigError(f"sources[{i}]: duplicate id {source.id!r}")
        seen.add(source.id)
        for network in source.networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(
                    f"sources[{i}].networks: {network!r} is not an address or CIDR"
                ) from None
        if source.token_sha256 and not re.fullmatch(r"[0-9a-f]{64}", source.token_sha256):
            raise ConfigError(f"sources[{i}].token_sha256: expected 64 lowercase hex digits")
    _validate_netmeta(config.netmeta, seen)
    if config.sources:
        # Compiling the syslog address map refuses a network claimed by two sources.
        from collectors.syslog.sources import SourceMap

        SourceMap(config.sources)
    # The notify section's cross-references (routes to channels, template values) follow the
    # notifier's own rules; checked here so that a start refuses them like any other key.
    from soc.notify.routing import validate_notify

    validate_notify(config.notify)


def _validate_netmeta(netmeta: NetmetaConfig, source_ids: set[str]) -> None:
    if netmeta.source_id and netmeta.source_id not in source_ids:
        raise ConfigError(f"netmeta.source_id: {netmeta.source_id!r} names no entry of sources")
    for name in ("idle_timeout", "active_timeout", "max_flows", "queue"):
        if getattr(netmeta, name) < 1:
            raise ConfigError(f"netmeta.{name}: must be at least 1")


def _validate_retention(retention: RetentionConfig) -> None:
    """Nothing is deleted that the legal minimum requires to keep: a shorter period is refused."""
    for name in ("events_days", "alerts_days", "incidents_days"):
        days = getattr(retention, name)
        if 0 < days < retention.legal_minimum_days:
            raise ConfigError(
                f"retention.{name}: {days} days is less than the legal minimum of"
                f" {retention.legal_minimum_days} days (retention.legal_minimum_days); keep at"
                " least that long, or 0 to keep for ever"
            )
    if retention.interval_seconds < 60:
        raise ConfigError("retention.interval_seconds: must be at least 60")


#: The highest niceness Linux and the BSDs give a process (the lowest priority).
_MAX_NICE = 19


def load_config(
    file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build the configuration from its layers; raise ConfigError naming the first bad key.

    `file` None means `$SOC_CONFIG` or `./soc.yaml` when it exists (it is optional).
    """
    env = os.environ if environ is None else environ
    if file is None:
        chosen = env.get("SOC_CONFIG")
        file = Path(chosen) if chosen else Path(DEFAULT_CONFIG_FILE)
        if not chosen and not file.exists():
            file = None
    merged: dict[str, Any] = {}
    for origin, layer in (
        (str(file), _file_layer(file) if file else {}),
        ("environment", _env_layer(env)),
        ("command line", dict(overrides or {})),
    ):
        try:
            _build(Config, layer, "")
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        merged = _merge(merged, layer)
    config: Config = _build(Config, merged, "")
    _validate(config)
    return config
