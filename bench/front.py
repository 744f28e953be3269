"""The normalizing and detecting process's CPU per event, on one core, with values let go as soon
as they are encoded, against a baseline in the same run that keeps them until the batch is done.

The stage (`NormalizeStage` with detection chained, hints on, the full SigmaHQ set and our rules)
handles the syslog stream bench/distributed.py sends, in batches as Kafka delivers them (raw
records decoded from their bytes), and hands a bus that carries bytes, as the Kafka bus does,
every event, alert and match encoded as it was made (compressing and sending them are measured
in bench/distributed.py):

    values kept    baseline: every value the stage encodes is held until the batch has been
                   handled, then freed with it, from cold memory (the stage before
                   `Message.bytes_only`)
    values let go  each value freed as soon as it is encoded, while still hot (what the engine
                   does)

The baseline holds them by wrapping the stages' `encode`; the same work is done either way, and
the bytes sent are compared. Needs no services; never fails on a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import soc.detect.stage  # noqa: E402
import soc.normalize.stage  # noqa: E402
from bench.run import make_lines  # noqa: E402
from collectors.syslog.server import Frame, RecordMaker  # noqa: E402
from soc import heap  # noqa: E402
from soc.bus.base import RAW, Delivered, Message, encode  # noqa: E402
from soc.detect.rules import load_rules  # noqa: E402
from soc.detect.stage import Detection, DetectionStage  # noqa: E402
from soc.embedded import _Chain  # noqa: E402
from soc.normalize import NormalizeOptions  # noqa: E402
from soc.normalize.stage import NormalizeStage  # noqa: E402

SIGMA = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))
BATCH = 2_000


class _Bytes:
    """Takes every message as bytes, as the Kafka bus does."""

    carries_bytes = True

    def __init__(self) -> None:
        self.sent = 0
        self.size = 0

    async def publish(self, topic: str, messages: Sequence[Message]) -> None:
        for message in messages:
            self.size += len(message.as_bytes())
        self.sent += len(messages)


class _Kept:
    """The baseline: every value the stages encode, held until the batch has been handled."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def encode(self, value: Any) -> bytes:
        self.values.append(value)
        return orjson.dumps(value)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        modules = (soc.normalize.stage, soc.detect.stage)
        for module in modules:
            module.encode = self.encode  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for module in modules:
                module.encode = encode  # type: ignore[attr-defined]


async def _cost(stage: NormalizeStage, raws: list[bytes], rounds: int, kept: _Kept | None) -> float:
    """Best of `rounds` passes, in microseconds of CPU an event."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for start in range(0, len(raws), BATCH):
            batch = []
            for offset, raw in enumerate(raws[start : start + BATCH], start=start):
                record = Delivered(RAW, 0, offset, "bench", raw=raw)
                record.value  # noqa: B018  (decoded as it is polled, as the Kafka bus does)
                record.raw = None
                batch.append(record)
            await stage.handle(batch)
            del batch
            if kept is not None:
                kept.values.clear()  # freed with the batch, as before
        best = min(best, time.process_time() - started)
    return best / len(raws) * 1e6


def _setup(events: int) -> tuple[Detection, list[bytes]]:
    """The rules, and the raw records as the collector publishes them."""
    paths = [ROOT / "rules"]
    if SIGMA.is_dir():
        paths += [
            SIGMA / name for name in ("rules", "rules-emerging-threats", "rules-threat-hunting")
        ]
    else:
        print(f"no SigmaHQ rules at {SIGMA} (SOC_SIGMA_PATH): our rules only")
    detection = Detection.from_rules(load_rules([path for path in paths if path.is_dir()]))
    maker = RecordMaker("127.0.0.1:5514")
    raws = [
        orjson.dumps(
            maker.make(Frame(line), "tcp", ("10.1.2.3", 51514), "2026-11-28T03:00:00.000000Z")
        )
        for line in make_lines(events)
    ]
    return detection, raws


def make_stage(bus: _Bytes, detection: Detection) -> NormalizeStage:
    """The stage as `soc engine --stages normalize,detect` runs it over Kafka."""
    chained = _Chain(DetectionStage(bus, detection))  # type: ignore[arg-type]
    options = NormalizeOptions(timezone=ZoneInfo("Asia/Ho_Chi_Minh"))
    built = NormalizeStage(bus, options, then=chained, hints=True)  # type: ignore[arg-type]
    heap.settle()  # the collector as the engine runs it
    return built


async def _measure(detection: Detection, raws: list[bytes], rounds: int) -> int:
    bus = _Bytes()
    stage = make_stage(bus, detection)
    kept = _Kept()
    sizes: dict[str, int] = {}
    costs: dict[str, list[float]] = {"kept": [], "let go": []}
    for _ in range(2):  # alternated, so that a slower stretch of the machine falls on both
        before = bus.size
        with kept.installed():
            costs["kept"].append(await _cost(stage, raws, rounds, kept))
        sizes["kept"] = bus.size - before
        before = bus.size
        costs["let go"].append(await _cost(stage, raws, rounds, None))
        sizes["let go"] = bus.size - before
    baseline, current = min(costs["kept"]), min(costs["let go"])
    same = sizes["kept"] == sizes["let go"]
    print(f"{len(raws):,} syslog lines, {BATCH:,} a batch, {len(detection.rules.rules):,} rules;"
          f" best of {2 * rounds} passes; {bus.sent // (4 * rounds):,} messages a pass,"
          f" bytes sent {'the same' if same else 'DIFFER'}")  # fmt: skip
    print(f"  values kept (baseline):  {baseline:6.2f} us/event")
    print(f"  values let go:           {current:6.2f} us/event  ({baseline / current:.2f}x)")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    detection, raws = _setup(args.events)
    return asyncio.run(_measure(detection, raws, args.rounds))


if __name__ == "__main__":
    sys.exit(main())
