"""Keys are placed on partitions exactly as Kafka's own producers place them."""

from __future__ import annotations

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2

from soc.bus.kafka import murmur2


def _signed(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


@pytest.mark.parametrize(
    ("key", "java"),
    [
        # org.apache.kafka.common.utils.UtilsTest#testMurmur2
        ("21", -973932308),
        ("foobar", -790332482),
        ("a-little-bit-long-string", -985981536),
        ("a-little-bit-longer-string", -1486304829),
        ("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
        ("abc", 479470107),
    ],
)
def test_the_java_clients_vectors(key: str, java: int) -> None:
    assert _signed(murmur2(key.encode())) == java


def test_equal_to_aiokafkas_for_every_length_and_byte() -> None:
    rng = random.Random(7)
    for length in range(0, 130):
        for _ in range(25):
            data = bytes(rng.randrange(256) for _ in range(length))
            assert murmur2(data) == aiokafka_murmur2(data), data


def test_keys_land_where_the_default_partitioner_puts_them() -> None:
    partitioner = DefaultPartitioner()
    partitions = list(range(7))
    for key in ("web09", "so-ttt|rule|web10|admin10", "Đỗ Văn Đức", ""):
        data = key.encode()
        ours = partitions[(murmur2(data) & 0x7FFFFFFF) % len(partitions)]
        assert ours == partitioner(data, partitions, partitions)
