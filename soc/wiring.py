"""Choosing implementations from configuration: the one place that names concrete classes, so
stages only ever see the Bus and Store contracts (DESIGN.md)."""

from __future__ import annotations

from soc.bus.base import Bus
from soc.bus.memory import MemoryBus
from soc.config import Config
from soc.store.base import Store
from soc.store.sqlite import SqliteStore


def make_bus(config: Config) -> Bus:
    # config validation admits only the schemes implemented here.
    return MemoryBus(capacity=config.pipeline.bus_capacity)


def make_store(config: Config) -> Store:
    return SqliteStore(config.sqlite_path)
