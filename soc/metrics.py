"""Every Prometheus series the platform exports, defined in one place so names and labels stay
consistent across parts (`soc_<what>_<unit>`, labels `source`, `stage`, `reason`, `rule`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS_RECEIVED = Counter(
    "soc_records_received_total", "Records received by collectors.", ["source", "transport"]
)
BYTES_RECEIVED = Counter(
    "soc_bytes_received_total", "Bytes received by collectors.", ["source", "transport"]
)
# Per configured syslog source (`sources[].id`, "unknown" for senders in no source's networks;
# never the peer address, which would make one series per sender).
SYSLOG_SOURCE_RECORDS = Counter(
    "soc_syslog_source_records_total", "Syslog records received.", ["source", "transport"]
)
SYSLOG_SOURCE_BYTES = Counter(
    "soc_syslog_source_bytes_total", "Syslog message bytes received.", ["source", "transport"]
)
SYSLOG_SOURCE_FLAGGED = Counter(
    "soc_syslog_source_flagged_total",
    "Syslog records kept but flagged: truncated, invalid_utf8, incomplete (framing).",
    ["source", "reason"],
)
SYSLOG_SOURCE_DROPPED = Counter(
    "soc_syslog_source_dropped_total",
    "Syslog records dropped. Should stay at zero.",
    ["source", "reason"],
)
SYSLOG_CONNECTIONS_REFUSED = Counter(
    "soc_syslog_connections_refused_total",
    "Syslog stream connections refused: at the TLS handshake (no or bad client certificate, "
    "...) or past the connection limit.",
    ["source", "transport", "reason"],
)
SYSLOG_CONNECTIONS = Gauge(
    "soc_syslog_connections", "Open syslog stream connections.", ["transport"]
)
RECORDS_FLAGGED = Counter(
    "soc_records_flagged_total",
    "Records kept but flagged (truncated, invalid UTF-8, unparsed header...).",
    ["stage", "reason"],
)
NORMALIZE_FAILURES = Counter(
    "soc_normalize_failures_total",
    "Records kept but not (fully) parsed by the normalizer, by declared format and reason.",
    ["format", "reason"],
)
DROPPED = Counter(
    "soc_dropped_total",
    "Records dropped, by stage and reason. Should stay at zero.",
    ["stage", "reason"],
)
STAGE_RECORDS = Counter(
    "soc_stage_records_total", "Records a stage consumed and committed.", ["stage"]
)
DETECT_SKIPPED = Counter(
    "soc_detect_skipped_total",
    "Events a detect stage skipped because the engine that normalized them detected them.",
)
STAGE_ERRORS = Counter(
    "soc_stage_errors_total", "Batches a stage failed to process (they are retried).", ["stage"]
)
BUS_BACKLOG = Gauge("soc_bus_backlog_records", "Records held by the in-process bus.", ["topic"])
EVENTS_STORED = Counter("soc_events_stored_total", "Events written to the store.")
ALERTS_STORED = Counter("soc_alerts_stored_total", "Alerts written to the store.")
STORE_DUPLICATES = Counter(
    "soc_store_duplicates_total", "Writes of ids already stored (replays).", ["kind"]
)
STORE_WRITE_SECONDS = Histogram(
    "soc_store_write_seconds",
    "Time to write one batch to the store.",
    ["kind"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_ERRORS = Counter("soc_store_errors_total", "Documents the store refused.", ["kind"])
RULES_LOADED = Gauge("soc_rules_loaded", "Rules compiled and evaluated.")
RULES_FAILED = Gauge(
    "soc_rules_failed", "Rule files or rules that could not be loaded, by reason.", ["reason"]
)
RULES_UNROUTED = Gauge(
    "soc_rules_unrouted", "Rules loaded but not evaluated: no mapping for their log source."
)
RULE_HITS = Counter("soc_rule_hits_total", "Events matched, by rule.", ["rule", "level"])
ALERT_LATENCY_SECONDS = Histogram(
    "soc_alert_latency_seconds",
    "Delay from receipt of an event to its alert being produced.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
CORRELATION_LATE = Counter(
    "soc_correlation_late_total",
    "Matches older than the allowed lateness: counted, not applied to any window.",
)
CORRELATION_DUPLICATES = Counter(
    "soc_correlation_duplicates_total",
    "Matches of a rule and an event already counted (a batch evaluated again): not counted twice.",
)
CORRELATION_EVICTED = Counter(
    "soc_correlation_evictions_total",
    "Correlation groups dropped: `expired` (idle past the window) or `cap` (state full).",
    ["reason"],
)
CORRELATION_GROUPS = Gauge("soc_correlation_groups", "Correlation groups held in memory.")
CORRELATION_REPLAY_RELEASED = Counter(
    "soc_correlation_replay_released_total",
    "Matches the correlator let go of before their windows closed because it held as many as it"
    " may for a replay (the in-process bus's capacity): a restart would not rebuild them.",
)
BUS_LAG = Gauge(
    "soc_bus_lag_records",
    "Records on the bus not yet committed by a stage's group, per topic partition.",
    ["group", "topic", "partition"],
)
RETENTION_DELETED = Counter(
    "soc_retention_deleted_total",
    "Documents (SQLite) or dated indices (Elasticsearch) deleted by retention, by kind.",
    ["kind", "unit"],
)
RETENTION_ERRORS = Counter(
    "soc_retention_errors_total", "Retention passes that failed (retried next interval).", ["kind"]
)
RETENTION_LAST_SUCCESS = Gauge(
    "soc_retention_last_success_timestamp_seconds",
    "When retention last completed a pass over every kind (Unix time).",
)
INTAKE_REQUESTS = Counter(
    "soc_intake_requests_total",
    "Requests to the HTTP intake by result (ok, unauthenticated, too_large, bad_request, "
    "unavailable).",
    ["result"],
)
INTAKE_LINES = Counter(
    "soc_intake_lines_total", "Lines the HTTP intake accepted or refused.", ["source", "result"]
)
AGENT_LINES = Counter(
    "soc_agent_lines_total", "Records the agent read from files and had acknowledged.", ["state"]
)
AGENT_SEND_FAILURES = Counter(
    "soc_agent_send_failures_total", "Pushes to the intake that failed (retried).", ["reason"]
)
AGENT_SPOOL_BYTES = Gauge("soc_agent_spool_bytes", "Bytes the agent holds in its spool.")
AGENT_PUSH_SECONDS = Histogram(
    "soc_agent_push_seconds",
    "Time from sending a batch to the intake's answer (answered or failed).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
AUTH_LOGINS = Counter(
    "soc_auth_logins_total",
    "Login attempts by result (ok, invalid, locked, disabled, rate_limited).",
    ["result"],
)
AUTH_FAILURES = Counter(
    "soc_auth_failures_total",
    "Requests refused by authentication, by reason (token, csrf).",
    ["reason"],
)
INCIDENTS_OPENED = Counter("soc_incidents_opened_total", "Incidents opened by grouping alerts.")
INCIDENT_ALERTS = Counter(
    "soc_incident_alerts_total", "Alerts grouped into incidents (replays not counted)."
)
INCIDENT_CONFLICTS = Counter(
    "soc_incident_conflicts_total",
    "Incident updates that met a newer version and were retried, by who (grouping, api).",
    ["by"],
)
NOTIFICATIONS_SENT = Counter(
    "soc_notifications_sent_total", "Messages a provider accepted, by channel.", ["channel"]
)
NOTIFICATIONS_FAILED = Counter(
    "soc_notifications_failed_total",
    "Send attempts that failed (retried or parked), by channel and reason.",
    ["channel", "reason"],
)
NOTIFICATIONS_PARKED = Counter(
    "soc_notifications_parked_total",
    "Messages parked after their last attempt: kept and retryable by an admin, never dropped.",
)
NOTIFICATIONS_HELD = Counter(
    "soc_notifications_held_total",
    "Incident changes held back by a notification window (told later in one digest).",
)
NOTIFY_OUTBOX_DEPTH = Gauge("soc_notify_outbox_depth", "Messages waiting in the outbox.")
NOTIFY_DELAY_SECONDS = Histogram(
    "soc_notify_delay_seconds",
    "Delay from an incident change (or a digest falling due) to the provider's acceptance.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800),
)
NETMETA_PACKETS = Counter(
    "soc_netmeta_packets_total",
    "Packets the sensor read, by outcome: `flow` (accounted) or why not (not_ip, ip_fragment...).",
    ["outcome"],
)
NETMETA_RECORDS = Counter(
    "soc_netmeta_records_total", "Records the sensor produced, by dataset.", ["dataset"]
)
NETMETA_FLOWS = Gauge("soc_netmeta_flows", "Flows held in the sensor's flow table.")
NETMETA_FLOWS_EVICTED = Counter(
    "soc_netmeta_flows_evicted_total",
    "Open flows reported early because the flow table was full (netmeta.max_flows).",
)
NETMETA_PARSE_ERRORS = Counter(
    "soc_netmeta_parse_errors_total",
    "DNS, HTTP or TLS payloads the sensor could not read (their flow is still reported).",
    ["protocol"],
)


def _start_known_series_at_zero() -> None:
    """Drops and errors whose labels are known beforehand are exported at zero from the start:
    `/metrics` shows them before the first one happens, and `increase()` in an alert rule sees
    the first one (a series born at 1 has no increase)."""
    for stage, reason in (
        ("syslog", "udp_queue_full"),
        ("index-events", "store_refused"),
        ("index-alerts", "store_refused"),
    ):
        DROPPED.labels(stage, reason)
    for kind in ("events", "alerts"):
        STORE_ERRORS.labels(kind)
    for reason in ("expired", "cap"):
        CORRELATION_EVICTED.labels(reason)


_start_known_series_at_zero()
