"""Syslog over UDP and TCP into the bus."""
