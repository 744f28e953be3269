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
RECORDS_FLAGGED = Counter(
    "soc_records_flagged_total",
    "Records kept but flagged (truncated, invalid UTF-8, unparsed header...).",
    ["stage", "reason"],
)
DROPPED = Counter(
    "soc_dropped_total",
    "Records dropped, by stage and reason. Should stay at zero.",
    ["stage", "reason"],
)
STAGE_RECORDS = Counter(
    "soc_stage_records_total", "Records a stage consumed and committed.", ["stage"]
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
CORRELATION_EVICTED = Counter(
    "soc_correlation_evictions_total",
    "Correlation groups dropped: `expired` (idle past the window) or `cap` (state full).",
    ["reason"],
)
CORRELATION_GROUPS = Gauge("soc_correlation_groups", "Correlation groups held in memory.")
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
