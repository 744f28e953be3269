"""Structured logs: `key=value` text for people, JSON lines for machines."""

from __future__ import annotations

import logging
import sys

import orjson

from soc.timeutil import format_ts, utcnow


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": format_ts(utcnow()),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode("utf-8")


def setup_logging(level: str = "info", form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if form == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s level=%(levelname)s logger=%(name)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Access logs for every API call drown what matters; errors still come through.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
