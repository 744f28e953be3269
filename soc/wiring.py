"""Choosing implementations from configuration: the one place that names concrete classes, so
stages only ever see the Bus and Store contracts (DESIGN.md)."""

from __future__ import annotations

from urllib.parse import urlsplit

from soc.bus.base import MATCHES, Bus
from soc.bus.memory import MemoryBus
from soc.config import Config
from soc.store.base import Store
from soc.store.sqlite import SqliteStore


def make_bus(config: Config) -> Bus:
    """`memory://` (in this process) or `kafka://host:port[,host:port...]`."""
    if config.bus.startswith("kafka://"):
        from soc.bus.kafka import KafkaBus

        return KafkaBus(
            config.bus.removeprefix("kafka://").rstrip("/"),
            partitions=config.pipeline.partitions,
            namespace=f"{config.namespace}." if config.namespace else "",
        )
    # The matches that feed correlations are journaled beside the store, so that correlation
    # windows outlive a restart of `soc run` as they do on Kafka.
    return MemoryBus(
        capacity=config.pipeline.bus_capacity,
        journal=config.data_dir / "bus-journal.db",
        durable={MATCHES},
    )


def is_elasticsearch(config: Config) -> bool:
    """Whether `store` names Elasticsearch (`http://host:9200`, `https://...`), not SQLite."""
    return urlsplit(config.store).scheme in {"http", "https"}


def make_store(config: Config) -> Store:
    """`sqlite://[path]` or an Elasticsearch URL (`http://host:9200`, `https://...`)."""
    if is_elasticsearch(config):
        from soc.store.elasticsearch import ElasticsearchStore

        prefix = f"{config.namespace}-soc" if config.namespace else "soc"
        # The pipeline needs writes durable (acknowledged), not searchable at once: waiting for
        # a refresh on every bulk held one writer to one batch a second. Documents become
        # searchable within the index refresh interval (1 s).
        store: Store = ElasticsearchStore(config.store, prefix=prefix, refresh="false")
        return store
    return SqliteStore(config.sqlite_path)
