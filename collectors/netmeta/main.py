"""`soc collector netmeta`: the sensor as its own process, live (`--interface`, `--bpf`) or
replaying pcap files (`--pcap FILE...`, then it exits)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Sequence
from pathlib import Path

from collectors.netmeta.flows import FlowSettings
from collectors.netmeta.pcapfile import CaptureError
from collectors.netmeta.sensor import Organizations, Sensor
from soc.bus.base import Bus
from soc.config import Config, NetmetaConfig
from soc.wiring import make_bus

log = logging.getLogger("soc.netmeta")


def flow_settings(netmeta: NetmetaConfig) -> FlowSettings:
    return FlowSettings(
        sensor_id=netmeta.sensor_id or socket.gethostname(),
        idle_timeout=float(netmeta.idle_timeout),
        active_timeout=float(netmeta.active_timeout),
        closed_timeout=float(netmeta.closed_timeout),
        max_flows=netmeta.max_flows,
        interface=netmeta.interface,
    )


def make_sensor(config: Config, bus: Bus) -> Sensor:
    return Sensor(
        bus,
        flow_settings(config.netmeta),
        Organizations(config.sources, config.netmeta.source_id),
        config.pipeline.batch_size,
    )


async def run_netmeta(config: Config, pcaps: Sequence[Path]) -> int:
    """0 when the pcaps were replayed or the capture was stopped by a signal; 1 when a capture
    could not be read (the message names the file or interface)."""
    netmeta = config.netmeta
    if not pcaps and not netmeta.interface:
        log.error("netmeta needs an interface (--interface or netmeta.interface) or --pcap files")
        return 2
    bus = make_bus(config)
    await bus.start()
    sensor = make_sensor(config, bus)
    try:
        if pcaps:
            table = await sensor.replay(pcaps)
            log.info("replayed files=%d flows_open_at_end=%d", len(pcaps), len(table))
            return 0
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        log.info(
            "ready sensor=%s interface=%s bpf=%r bus=%s",
            sensor.settings.sensor_id, netmeta.interface, netmeta.bpf, config.bus,
        )  # fmt: skip
        await sensor.capture(netmeta.interface, netmeta.bpf, stop, netmeta.queue)
        log.info("stopped cleanly")
        return 0
    except CaptureError as exc:
        log.error("%s", exc)
        return 1
    finally:
        await bus.close()


async def start_sensor(config: Config, bus: Bus, stop: asyncio.Event) -> asyncio.Task[None]:
    """The live sensor as a part of `soc run` (when `netmeta.interface` is set), returned once
    the interface is being read (or the capture failed: the task then holds the reason, and
    `soc run` stops with it rather than run blind). It captures until `stop`, then publishes
    the flows still open."""
    netmeta = config.netmeta
    sensor = make_sensor(config, bus)
    ready = asyncio.Event()
    task = asyncio.create_task(
        sensor.capture(netmeta.interface, netmeta.bpf, stop, netmeta.queue, ready),
        name="netmeta",
    )
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    return task
