"""Registry of per-program message parsers, keyed by syslog APP-NAME / TAG (process.name).

A new program (su, cron, postfix...) is one module with a ``parse(message, event)`` function and
one line per program name here; the normalizer only ever does a dict lookup.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from soc.normalize.programs import (
    cron,
    dovecot,
    filterlog,
    netfilter,
    postfix,
    sshd,
    su,
    sudo,
    sysmon,
)

__all__ = ["PROGRAMS", "ProgramParser"]


@dataclass(frozen=True, slots=True)
class ProgramParser:
    """A program's parser and the ECS module/dataset its events belong to whatever the message,
    so that an unrecognised sshd line still lands in the dataset sshd rules search."""

    module: str
    dataset: str
    parse: Callable[[str, dict[str, Any]], None]


_SSHD: Final = ProgramParser("system", "system.auth", sshd.parse)
_SUDO: Final = ProgramParser("system", "system.auth", sudo.parse)
_SU: Final = ProgramParser("system", "system.auth", su.parse)
_CRON: Final = ProgramParser("system", "system.cron", cron.parse)
_POSTFIX: Final = ProgramParser("system", "system.mail", postfix.parse)
_DOVECOT: Final = ProgramParser("system", "system.mail", dovecot.parse)
_SYSMON: Final = ProgramParser("sysmon", "sysmon.linux", sysmon.parse)
#: Kernel lines stay generic syslog; the netfilter LOG lines among them (UFW, firewalld,
#: iptables) become firewall events of dataset iptables.log.
_KERNEL: Final = ProgramParser("syslog", "syslog", netfilter.parse)
#: pfSense and OPNsense: every packet their rules log, one CSV line.
_FILTERLOG: Final = ProgramParser("pfsense", "pfsense.log", filterlog.parse)

PROGRAMS: Final[dict[str, ProgramParser]] = {
    "sshd": _SSHD,
    "sshd-session": _SSHD,  # OpenSSH 9.8+ logs the per-connection process under this name
    "sudo": _SUDO,
    "su": _SU,
    "cron": _CRON,
    "CRON": _CRON,  # Debian's cron logs its jobs under the upper-case name
    "crond": _CRON,
    "crontab": _CRON,
    "anacron": _CRON,
    # Every postfix daemon ("postfix/smtpd", "postfix/qmgr", "postfix-out/smtp") finds this
    # entry through the normalizer's fallback to the part before the "/".
    "postfix": _POSTFIX,
    "dovecot": _DOVECOT,
    "imap-login": _DOVECOT,
    "pop3-login": _DOVECOT,
    "submission-login": _DOVECOT,
    "managesieve-login": _DOVECOT,
    "sysmon": _SYSMON,  # Sysmon for Linux: the Windows event XML, in the message
    "kernel": _KERNEL,
    "filterlog": _FILTERLOG,
}
