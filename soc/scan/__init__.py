"""Offline scanning of files seized from a server (``soc scan``): readers turn each file into
ECS events, the same events the live pipeline would have produced."""

from soc.scan.readers import FORMATS, ReadProblem, ScannedEvent, detect_format, read_events

__all__ = ["FORMATS", "ReadProblem", "ScannedEvent", "detect_format", "read_events"]
