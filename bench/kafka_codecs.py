"""The Kafka bus's compression codec on what the engine publishes most: normalized events.

Each codec aiokafka offers compresses and decompresses the same batch (a mixed Windows, Linux
and web stream, as bench/detect.py builds it, serialized as the bus serializes it); prints
MB/s each way and the ratio, with gzip (the usual default) as the baseline. The bus uses
Zstandard (soc/bus/kafka.py). Never fails on a time.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from aiokafka import codec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.detect import SIGMA, mixed_stream  # noqa: E402

CODECS: list[tuple[str, Callable[[bytes], bytes], Callable[[bytes], bytes]]] = [
    ("gzip", codec.gzip_encode, codec.gzip_decode),
    ("lz4 (aiokafka: level 9)", codec.lz4_encode, codec.lz4_decode),
    ("snappy", codec.snappy_encode, codec.snappy_decode),
    ("zstd (level 3, the bus's)", codec.zstd_encode, codec.zstd_decode),
]


def rate(work: Callable[[], object], size: int, rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return size / best / 1e6


def main() -> int:
    if not (SIGMA / "regression_data").is_dir():
        print(f"SigmaHQ corpus not found at {SIGMA}: set SOC_SIGMA_PATH")
        return 0
    # One producer batch: aiokafka's default max_batch_size region of records, 1 MiB here.
    events = mixed_stream(500)
    payload = b"".join(orjson.dumps(event) for event in events)
    print(f"batch: {len(events)} events, {len(payload) / 1e6:.2f} MB serialized")
    figures = []
    for name, encode, decode in CODECS:
        packed = encode(payload)
        assert decode(packed) == payload, name
        figures.append(
            (
                name,
                rate(lambda e=encode: e(payload), len(payload)),
                rate(lambda d=decode, p=packed: d(p), len(payload)),
                len(payload) / len(packed),
            )
        )
    base = figures[0]
    for name, out, back, ratio in figures:
        print(
            f"{name:<27}: compress {out:7.0f} MB/s ({out / base[1]:4.1f}x gzip), "
            f"decompress {back:6.0f} MB/s ({back / base[2]:4.1f}x), ratio {ratio:5.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
