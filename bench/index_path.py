"""The event indexer's CPU per event, decoding events against storing them from their bytes.

Over Kafka, the indexer used to decode every event into dicts, derive its id, time and free text,
and encode it again for Elasticsearch's bulk body. The normalizing stage now publishes those
three as record headers (`soc.store.documents.hints`) and the indexer splices the folded text
into the bytes as they came (`ElasticsearchStore.write_encoded`). This prints, per event on one
core, what each way costs the indexer and what the hints cost the normalizing process, with the
bulk bodies of both ways compared byte for byte. Events are the syslog stream
bench/distributed.py sends. Needs no services; never fails on a time.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.run import make_lines  # noqa: E402
from soc import heap  # noqa: E402
from soc.bus.base import Delivered  # noqa: E402
from soc.normalize import NormalizeOptions, normalize  # noqa: E402
from soc.store.documents import encoded, hints  # noqa: E402
from soc.store.elasticsearch import ElasticsearchStore  # noqa: E402

BATCH = 2_000


def _events(count: int) -> list[dict[str, Any]]:
    options = NormalizeOptions()
    return [
        normalize(
            {
                "id": f"bench-{n}",
                "received_at": "2026-11-28T03:00:00.000000Z",
                "source": {"type": "syslog", "peer": {"ip": "10.1.2.3", "port": 51514}},
                "organization": {"id": "so-ttt"},
                "data": line.decode(),
            },
            options,
        )
        for n, line in enumerate(make_lines(count))
    ]


def _best(rounds: int, count: int, run: Callable[[], object]) -> float:
    """Best of `rounds`, in microseconds an event."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    events = _events(args.events)
    # As the platform delivers them from Kafka: the bytes, and the hints as headers.
    published = [(orjson.dumps(event), hints("events", event)) for event in events]
    store = ElasticsearchStore("http://127.0.0.1:9200", prefix="bench")
    heap.settle()  # the collector as the engine runs it

    def decoding() -> list[bytes]:
        bodies = []
        for start in range(0, len(published), BATCH):
            batch = [
                Delivered("soc.events", 0, n, "k", raw=raw)
                for n, (raw, _) in enumerate(published[start : start + BATCH])
            ]
            actions, _ = store._actions("events", [record.value for record in batch])
            bodies.append(b"".join(action.lines for action in actions))
        return bodies

    def from_bytes() -> list[bytes]:
        bodies = []
        for start in range(0, len(published), BATCH):
            batch = [
                Delivered("soc.events", 0, n, "k", raw=raw, headers=headers)
                for n, (raw, headers) in enumerate(published[start : start + BATCH])
            ]
            records = [encoded(record.raw, record.headers) for record in batch]
            actions, _ = store._encoded_actions("events", records)  # type: ignore[arg-type]
            bodies.append(b"".join(action.lines for action in actions))
        return bodies

    same = decoding() == from_bytes()
    cost_hints = _best(args.rounds, len(events), lambda: [hints("events", e) for e in events])
    cost_decoding = _best(args.rounds, len(events), decoding)
    cost_bytes = _best(args.rounds, len(events), from_bytes)
    heap.release()
    gc.collect()
    print(f"{len(events):,} syslog events, {BATCH:,} a batch; best of {args.rounds}; bulk bodies"
          f" {'identical' if same else 'DIFFER'}")  # fmt: skip
    print(f"  indexer, decoding (baseline):    {cost_decoding:6.2f} us/event")
    print(f"  indexer, from bytes and hints:   {cost_bytes:6.2f} us/event"
          f"  ({cost_decoding / cost_bytes:.1f}x less)")  # fmt: skip
    print(f"  normalizer, making the hints:    {cost_hints:6.2f} us/event")
    print(f"  net, both processes:             {cost_decoding - cost_bytes - cost_hints:6.2f}"
          " us/event saved")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
