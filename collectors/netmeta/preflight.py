"""What live capture needs from the host, checked without capturing: the interface, the right
to open a packet socket (CAP_NET_RAW) and libpcap when a BPF filter is set. `soc doctor`
reports these, so an operator learns of a missing piece before the sensor is started."""

from __future__ import annotations

import ctypes.util
from pathlib import Path
from typing import Final

_CAP_NET_RAW: Final = 13


def _has_net_raw(status: Path = Path("/proc/self/status")) -> bool:
    try:
        for line in status.read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_NET_RAW & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def capture_problems(interface: str, bpf: str, sysfs: Path = Path("/sys/class/net")) -> list[str]:
    """What would stop a live capture on `interface` with filter `bpf`; empty when nothing."""
    problems = []
    if not (sysfs / interface).exists():
        known = ", ".join(sorted(p.name for p in sysfs.iterdir())) if sysfs.is_dir() else "?"
        problems.append(f"no interface {interface!r} on this host (have: {known})")
    if not _has_net_raw():
        problems.append("no CAP_NET_RAW: run as root or `setcap cap_net_raw+ep` the Python binary")
    if bpf and ctypes.util.find_library("pcap") is None:
        problems.append("netmeta.bpf needs libpcap (apt install libpcap0.8) to compile the filter")
    return problems
