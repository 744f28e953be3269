"""Which configured source (and so which agency) a syslog sender is, from its address.

Syslog carries no credential, so the sending address is all a collector has to attribute a line
to an agency. `Config.sources[].networks` lists addresses and CIDRs; the most specific network
that holds the sender wins (a host carved out of its agency's /16 belongs to whoever lists the
/32). Lookups are on the hot path of every UDP datagram, so the networks are compiled into one
dict of network numbers per prefix length, searched longest first, and each peer's answer is
cached.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from soc.config import ConfigError, SourceConfig

log = logging.getLogger(__name__)

#: The metric label of senders in no configured source's networks.
UNKNOWN = "unknown"
#: Peers whose answer is remembered; past this the cache starts over (a scan of many spoofed
#: UDP source addresses must not grow memory without bound).
_CACHE_SIZE = 65_536
#: Strangers named in the log, one line each; past this they are only counted ("unknown").
_STRANGERS_LOGGED = 100


@dataclass(frozen=True, slots=True)
class Sender:
    """A configured source: its id (a metric label and `source.id`) and its agency."""

    id: str
    agency: str


#: Per address family: (prefix length, {network number >> host bits: sender}), longest first.
_Table = list[tuple[int, dict[int, Sender]]]


class SourceMap:
    """Sender address -> configured source, longest prefix first, cached per peer."""

    def __init__(self, sources: Iterable[SourceConfig] = (), *, log_strangers: bool = True) -> None:
        """`log_strangers` False: addresses in no source are expected (the packet sensor sees
        the whole internet), so they are not logged."""
        by_length: dict[tuple[int, int], dict[int, Sender]] = {}
        for index, source in enumerate(sources):
            if source.id == UNKNOWN:
                raise ConfigError(
                    f"sources[{index}].id: {UNKNOWN!r} is reserved for senders in no source"
                )
            sender = Sender(source.id, source.agency)
            for text in source.networks:
                try:
                    network = ipaddress.ip_network(text, strict=False)
                except ValueError:
                    raise ConfigError(
                        f"sources[{index}].networks: {text!r} is not an address or CIDR"
                    ) from None
                network = _unmapped_network(network)
                slot = by_length.setdefault((network.version, network.prefixlen), {})
                key = int(network.network_address) >> (network.max_prefixlen - network.prefixlen)
                if slot.get(key, sender) != sender:
                    raise ConfigError(
                        f"sources[{index}].networks: {text!r} is already listed by source "
                        f"{slot[key].id!r}; a network can belong to one source only"
                    )
                slot[key] = sender
        self._tables: dict[int, _Table] = {4: [], 6: []}
        for (version, length), slot in sorted(by_length.items(), key=lambda item: -item[0][1]):
            self._tables[version].append((length, slot))
        self._bits = {4: 32, 6: 128}
        self._cache: dict[str, Sender | None] = {}
        self._strangers_logged = 0
        self._log_strangers = log_strangers
        self.networks = sum(len(slot) for slot in by_length.values())

    def lookup(self, peer: str) -> Sender | None:
        """The source that owns `peer` (an IP address as text), or None for a stranger."""
        try:
            return self._cache[peer]
        except KeyError:
            pass
        sender = self._search(peer)
        if len(self._cache) >= _CACHE_SIZE:
            self._cache.clear()
        self._cache[peer] = sender
        if sender is None and self.networks and self._log_strangers:
            self._log_stranger(peer)
        return sender

    def _log_stranger(self, peer: str) -> None:
        if self._strangers_logged < _STRANGERS_LOGGED:
            log.warning("syslog sender not in any configured source peer=%s", peer)
        elif self._strangers_logged == _STRANGERS_LOGGED:
            log.warning(
                "more than %d syslog senders not in any configured source; no longer logging "
                "each (they are counted as source=unknown)",
                _STRANGERS_LOGGED,
            )
        self._strangers_logged += 1

    def _search(self, peer: str) -> Sender | None:
        try:
            address = _unmapped_address(ipaddress.ip_address(peer.split("%", 1)[0]))
        except ValueError:
            return None
        number = int(address)
        bits = self._bits[address.version]
        for length, slot in self._tables[address.version]:
            sender = slot.get(number >> (bits - length))
            if sender is not None:
                return sender
        return None


def _unmapped_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A dual-stack socket reports IPv4 senders as ::ffff:a.b.c.d; match them as IPv4."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _unmapped_network(
    network: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")
    return network
