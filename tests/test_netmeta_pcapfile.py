"""Capture files as they come: classic pcap in either byte order, micro- or nanosecond, gzip
compressed; a file cut inside its last record; a corrupt record length."""

from __future__ import annotations

import gzip
import logging
import struct
from pathlib import Path

import pytest
from scapy.utils import PcapNgWriter, PcapWriter, RawPcapReader, wrpcap

from collectors.netmeta.pcapfile import CaptureError, read_pcap
from tests.netmeta_pcaps import conversations


def _expected(path: Path) -> list[tuple[bytes, int]]:
    """Frames and link type as scapy's own reader sees them."""
    with RawPcapReader(str(path)) as reader:
        return [(data, reader.linktype) for data, _ in reader]


def test_classic_pcap_frames_and_times_match_scapys_reader(tmp_path: Path) -> None:
    path = tmp_path / "plain.pcap"
    packets = conversations()
    wrpcap(str(path), packets)
    frames = list(read_pcap(path))
    assert [(f, lt) for _, f, lt in frames] == _expected(path)
    assert [round(ts, 6) for ts, _, _ in frames] == [round(float(p.time), 6) for p in packets]


def test_nanosecond_big_endian_and_gzip_files_read_alike(tmp_path: Path) -> None:
    packets = conversations()
    reference = tmp_path / "plain.pcap"
    wrpcap(str(reference), packets)
    want = list(read_pcap(reference))
    nano = tmp_path / "nano.pcap"
    wrpcap(str(nano), packets, nano=True)
    big = tmp_path / "big.pcap"
    with PcapWriter(str(big), endianness=">") as writer:
        for packet in packets:
            writer.write(packet)
    packed = tmp_path / "plain.pcap.gz"
    packed.write_bytes(gzip.compress(reference.read_bytes()))
    for path in (nano, big, packed):
        got = list(read_pcap(path))
        assert [(f, lt) for _, f, lt in got] == [(f, lt) for _, f, lt in want], path.name
        assert [round(ts, 6) for ts, _, _ in got] == [round(ts, 6) for ts, _, _ in want]


def test_pcapng_plain_and_gzip_give_the_classic_frames(tmp_path: Path) -> None:
    packets = conversations()
    reference = tmp_path / "plain.pcap"
    wrpcap(str(reference), packets)
    ng = tmp_path / "capture.pcapng"
    writer = PcapNgWriter(str(ng))
    for packet in packets:
        writer.write(packet)
    writer.close()
    packed = tmp_path / "capture.pcapng.gz"
    packed.write_bytes(gzip.compress(ng.read_bytes()))
    want = [(round(ts, 6), f, lt) for ts, f, lt in read_pcap(reference)]
    for path in (ng, packed):
        assert [(round(ts, 6), f, lt) for ts, f, lt in read_pcap(path)] == want, path.name


def test_a_file_cut_inside_a_record_keeps_the_records_before(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cut.pcap"
    wrpcap(str(path), conversations())
    whole = list(read_pcap(path))
    path.write_bytes(path.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        cut = list(read_pcap(path))
    assert cut == whole[:-1]
    assert "ends inside a record" in caplog.text


def test_a_corrupt_record_length_is_an_error_naming_the_byte(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pcap"
    wrpcap(str(path), conversations()[:2])
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 24 + 8, 50_000_000)  # first record's captured length
    path.write_bytes(bytes(data))
    with pytest.raises(CaptureError, match=r"corrupt\.pcap: record at byte 24 claims 50000000"):
        list(read_pcap(path))


def test_missing_and_empty_files_are_refused_with_their_names(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match=r"absent\.pcap: cannot open"):
        list(read_pcap(tmp_path / "absent.pcap"))
    empty = tmp_path / "empty.pcap"
    empty.write_bytes(b"")
    with pytest.raises(CaptureError, match=r"empty\.pcap: not a pcap"):
        list(read_pcap(empty))
