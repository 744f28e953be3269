"""The sensor over pcap files without a bus: its records one by one, as `soc scan` reads
them (an incident responder's capture from a seized network tap)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from collectors.netmeta.flows import Document, FlowSettings, FlowTable
from collectors.netmeta.pcapfile import read_pcap
from collectors.netmeta.sensor import process_frames

#: observer.name of records read by a scan, and part of their ids.
SCAN_SENSOR = "scan"


def pcap_documents(path: Path, settings: FlowSettings | None = None) -> Iterator[Document]:
    """Every record of one capture file in the order the sensor produces them, the flows still
    open at its end last. Raises CaptureError for a file that is not a capture."""
    table = FlowTable(settings or FlowSettings(sensor_id=SCAN_SENSOR))
    for _ in process_frames(table, read_pcap(path), 1024):
        documents, table.out = table.out, []
        yield from documents
    table.finish("capture_end")
    yield from table.out
