"""Linux audit records (``/var/log/audit/audit.log`` lines) -> ECS, as Elastic's auditd
integration shapes them (``event.module: auditd``, ``event.dataset: auditd.log``).

One line is one record (``type=SYSCALL msg=audit(1700000000.123:456): key=value ...``). Records
of one kernel event share the serial (``auditd.log.sequence``); they are normalized one by one,
each with the serial, so a search on it regroups them.

Unlike Elastic's pipeline, every key=value stays under ``auditd.log`` (hex decoded) even when it
is also copied to an ECS field: Sigma's auditd rules name the raw keys (``type``, ``a0``,
``exe``, ``key``), which the linux pipeline maps to ``auditd.log.<key>``.
"""

import copy
import re
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any, Final

from soc.normalize.ecs import Event, add_related, branch, format_utc, set_source, set_user
from soc.normalize.record import failed

__all__ = ["normalize_line"]

_MODULE: Final = "auditd"
_DATASET: Final = "auditd.log"
_UNSET_ID: Final = frozenset({"4294967295", "-1", "unset"})
_MAX_LONG: Final = 2**63 - 1
_HEADER_RE: Final = re.compile(
    r"(?:node=(?P<node>\S+) )?type=(?P<type>\S+) "
    r"msg=audit\((?P<epoch>[0-9]{1,12}(?:\.[0-9]{1,9})?):(?P<serial>[0-9]{1,20})\):\s?"
)
_KV_RE: Final = re.compile(r"""([A-Za-z_][\w-]*)=("[^"]*"|'[^']*'|[^\s"']*)""")
_HEX_RE: Final = re.compile(r"(?:[0-9A-F]{2})+")
# Keys auditd hex-encodes when their value holds a space, a quote or a control character.
_HEX_KEYS: Final = frozenset(
    {
        "exe", "cmd", "data", "path", "comm", "file", "name", "watch", "cwd", "acct", "dir",
        "proctitle", "ocomm", "grp", "new_group", "old_group", "root_dir", "vm", "device",
    }
)  # fmt: skip
_NO_VALUE: Final = frozenset({"?", "(null)", ""})
_EXECVE_ARG_RE: Final = re.compile(r"a([0-9]{1,4})\Z")
_ARCHES: Final = {"c000003e": "x86_64", "40000003": "i386", "c00000b7": "aarch64"}
_OUTCOMES: Final = {"success": "success", "1": "success", "yes": "success"} | {
    "failed": "failure",
    "0": "failure",
    "no": "failure",
}

Action = tuple[str, tuple[str, ...], tuple[str, ...]]  # action, category, type
# Record types -> ECS, after go-libaudit's table that Elastic's pipeline is generated from.
_TYPES: Final[dict[str, Action]] = {
    "USER_LOGIN": ("logged-in", ("authentication",), ("start",)),
    "USER_LOGOUT": ("logged-out", ("authentication",), ("end",)),
    "USER_AUTH": ("authenticated", ("authentication",), ("info",)),
    "USER_ACCT": ("was-authorized", ("authentication",), ("info",)),
    "USER_ERR": ("error", ("authentication",), ("info",)),
    "USER_START": ("started-session", ("session",), ("start",)),
    "USER_END": ("ended-session", ("session",), ("end",)),
    "CRED_ACQ": ("acquired-credentials", ("authentication",), ("info",)),
    "CRED_DISP": ("disposed-credentials", ("authentication",), ("info",)),
    "CRED_REFR": ("refreshed-credentials", ("authentication",), ("info",)),
    "USER_CMD": ("ran-command", ("process",), ("start",)),
    "USER_CHAUTHTOK": ("changed-password", ("iam",), ("user", "change")),
    "ADD_USER": ("added-user-account", ("iam",), ("user", "creation")),
    "DEL_USER": ("deleted-user-account", ("iam",), ("user", "deletion")),
    "USER_MGMT": ("modified-user-account", ("iam",), ("user", "change")),
    "ADD_GROUP": ("added-group-account-to", ("iam",), ("group", "creation")),
    "DEL_GROUP": ("deleted-group-account-from", ("iam",), ("group", "deletion")),
    "GRP_MGMT": ("modified-group-account", ("iam",), ("group", "change")),
    "SERVICE_START": ("started-service", ("process",), ("start",)),
    "SERVICE_STOP": ("stopped-service", ("process",), ("end",)),
    "SYSTEM_BOOT": ("booted-system", ("host",), ("info",)),
    "SYSTEM_SHUTDOWN": ("shutdown-system", ("host",), ("info",)),
    "DAEMON_START": ("started-audit", ("process",), ("start",)),
    "DAEMON_END": ("stopped-audit", ("process",), ("end",)),
    "CONFIG_CHANGE": ("changed-audit-configuration", ("configuration",), ("change",)),
    "ANOM_ABEND": ("crashed-program", ("process",), ("end",)),
    "ANOM_PROMISCUOUS": ("changed-promiscuous-mode-on-device", ("host",), ("change",)),
    "AVC": ("violated-selinux-policy", ("process",), ("info",)),
    "USER_AVC": ("access-permission", ("process",), ("info",)),
    "SECCOMP": ("violated-seccomp-policy", ("process",), ("info",)),
    "LOGIN": ("changed-login-id-to", ("authentication",), ("start",)),
    "NETFILTER_CFG": ("loaded-firewall-rule-to", ("configuration",), ("change",)),
    "TTY": ("typed", ("process",), ("info",)),
    "USER_TTY": ("typed", ("process",), ("info",)),
    "EXECVE": ("executed", ("process",), ("start",)),
}
# Syscalls by name (enriched logs say SYSCALL=execve) and by x86_64 number (raw logs).
_SYSCALLS: Final[dict[str, Action]] = {
    "execve": ("executed", ("process",), ("start",)),
    "execveat": ("executed", ("process",), ("start",)),
    "connect": ("connected-to", ("network",), ("connection", "start")),
    "accept": ("accepted-connection-from", ("network",), ("connection", "start")),
    "accept4": ("accepted-connection-from", ("network",), ("connection", "start")),
    "bind": ("bound-socket", ("network",), ("start",)),
    "listen": ("listen-for-connections", ("network",), ("start",)),
    "open": ("opened-file", ("file",), ("info",)),
    "openat": ("opened-file", ("file",), ("info",)),
    "unlink": ("deleted", ("file",), ("deletion",)),
    "unlinkat": ("deleted", ("file",), ("deletion",)),
    "rename": ("renamed", ("file",), ("change",)),
    "renameat": ("renamed", ("file",), ("change",)),
    "chmod": ("changed-file-permissions-of", ("file",), ("change",)),
    "fchmodat": ("changed-file-permissions-of", ("file",), ("change",)),
    "chown": ("changed-file-ownership-of", ("file",), ("change",)),
    "fchownat": ("changed-file-ownership-of", ("file",), ("change",)),
    "ptrace": ("traced-process", ("process",), ("access",)),
    "kill": ("killed-pid", ("process",), ("end",)),
    "init_module": ("loaded-kernel-module", ("driver",), ("start",)),
    "finit_module": ("loaded-kernel-module", ("driver",), ("start",)),
    "delete_module": ("unloaded-kernel-module", ("driver",), ("end",)),
    "mount": ("mounted", ("file",), ("creation",)),
    "setuid": ("changed-identity-of", ("process",), ("change",)),
}
_X86_64: Final = {
    "2": "open", "42": "connect", "43": "accept", "49": "bind", "50": "listen", "59": "execve",
    "62": "kill", "82": "rename", "87": "unlink", "90": "chmod", "92": "chown", "101": "ptrace",
    "105": "setuid", "165": "mount", "175": "init_module", "176": "delete_module",
    "257": "openat", "263": "unlinkat", "264": "renameat", "260": "fchownat",
    "268": "fchmodat", "288": "accept4", "313": "finit_module", "322": "execveat",
}  # fmt: skip
_SYSCALL_DEFAULT: Final[Action] = ("", ("process",), ("info",))
# SYSCALL contexts awaiting the rest of their event's records (which follow within
# milliseconds); the oldest go first, so a burst of unrelated events bounds the memory.
_MAX_EVENTS: Final = 4096
_EVENTS: OrderedDict[tuple[str, ...], dict[str, Any]] = OrderedDict()


def normalize_line(line: str, stream: tuple[str, ...] = ()) -> Event:
    """One audit record -> ECS fields (without the record envelope). Never raises on text.

    ``stream`` names where the line came from (agency, source, file): records of one kernel
    event arrive together there, so a later record (EXECVE, PATH, PROCTITLE) is given the
    process and user its SYSCALL record named, which it does not repeat.
    """
    text = line.rstrip("\r\n")
    event: Event = {"event": {"kind": "event", "module": _MODULE, "dataset": _DATASET}}
    match = _HEADER_RE.search(text)
    if match is None:
        event["message"] = text
        return failed(event, "auditd_unparsed", "no 'type=... msg=audit(time:serial):' header")
    record_type = match["type"]
    values = _key_values(text[match.end() :], record_type)
    log = branch(event, "auditd", "log")
    log.update(values)
    log["record_type"] = record_type
    log["type"] = record_type  # Sigma's auditd rules say `type: EXECVE`
    serial = int(match["serial"])
    if serial <= _MAX_LONG:
        log["sequence"] = serial
    if match["node"]:
        log["node"] = match["node"]
        event["host"] = {"name": match["node"]}
    event["@timestamp"] = _epoch(match["epoch"])
    event["message"] = text[match.end() :]
    _classify(event, record_type, values)
    _set_user(event, values)
    _set_process(event, record_type, values)
    _set_network(event, values)
    _group(event, (*stream, match["node"] or "", match["epoch"], match["serial"]), record_type)
    return event


def _group(event: Event, key: tuple[str, ...], record_type: str) -> None:
    """Remember a SYSCALL's process and user; fill them into the event's other records."""
    if record_type == "SYSCALL":
        # A copy: the event itself goes on to be changed (vouched fields) and sent.
        _EVENTS[key] = {n: copy.deepcopy(event[n]) for n in ("process", "user") if n in event}
        while len(_EVENTS) > _MAX_EVENTS:
            _EVENTS.popitem(last=False)
        return
    remembered = _EVENTS.get(key)
    if remembered is None:
        return
    for name, fields in remembered.items():
        mine = event.setdefault(name, {})
        for field_name, value in fields.items():
            if field_name not in mine:
                mine[field_name] = copy.deepcopy(value)
    user_name = event.get("user", {}).get("name")
    if isinstance(user_name, str):
        add_related(event, "user", user_name)


def _key_values(text: str, record_type: str) -> dict[str, Any]:
    """key=value pairs; a quoted msg='...' (user-space records) is split into pairs too.
    "?", "(null)" and empty values mean "no value" and are left out. Inlined: ~25 pairs a line."""
    values: dict[str, Any] = {}
    execve = record_type == "EXECVE"
    if "\x1d" in text:  # enriched logs put their resolved names after a GS separator
        text = text.replace("\x1d", " ")
    for key, raw in _KV_RE.findall(text):
        first = raw[:1]
        if first == '"':
            value = raw[1:-1]
        elif first == "'":
            if key == "msg":
                for sub_key, sub_raw in _KV_RE.findall(raw[1:-1]):
                    sub_value = _value(sub_key, sub_raw, execve)
                    if sub_value not in _NO_VALUE:
                        values.setdefault(sub_key, sub_value)
                continue
            value = raw[1:-1]
        elif key in _HEX_KEYS or execve:
            value = _value(key, raw, execve)
        else:
            value = raw
        if value not in _NO_VALUE:
            values.setdefault(key, value)
    return values


def _value(key: str, raw: str, execve: bool) -> str:
    """Quoted values are plain text; unquoted hex is how auditd encodes text with spaces or
    control characters (proctitle separates arguments by NUL: shown as spaces)."""
    if raw[:1] in {'"', "'"}:
        return raw[1:-1]
    hex_key = key in _HEX_KEYS or (execve and _EXECVE_ARG_RE.match(key))
    if hex_key and len(raw) >= 2 and _HEX_RE.fullmatch(raw):
        decoded = bytes.fromhex(raw).decode("utf-8", "backslashreplace")
        return decoded.replace("\x00", " ").rstrip() if key == "proctitle" else decoded
    return raw


def _epoch(text: str) -> str:
    try:
        return format_utc(datetime.fromtimestamp(float(text), UTC))
    except (ValueError, OverflowError, OSError):
        return text  # unreadable: the envelope puts the receipt time in its place


def _classify(event: Event, record_type: str, values: dict[str, Any]) -> None:
    fields = event["event"]
    action = _TYPES.get(record_type)
    if action is None and record_type == "SYSCALL":
        numbers = _X86_64 if values.get("arch") == "c000003e" else {}
        name = values.get("SYSCALL") or numbers.get(str(values.get("syscall")))
        action = _SYSCALLS.get(str(name), _SYSCALL_DEFAULT)
    name, category, kinds = action or ("", (), ())
    fields["action"] = name or record_type.lower()
    if category:
        fields["category"] = list(category)
        fields["type"] = list(kinds)
    result = values.get("res", values.get("success"))
    if isinstance(result, str):
        fields["outcome"] = _OUTCOMES.get(result.lower(), "unknown")


def _set_user(event: Event, values: dict[str, Any]) -> None:
    """uid is who the process runs as (user.id), auid who logged in (user.audit.id): an admin
    who ran sudo keeps their auid, which is what an investigation follows."""
    user: dict[str, Any] = {}
    for key, path in (("uid", ("id",)), ("auid", ("audit", "id")), ("euid", ("effective", "id"))):
        value = values.get(key)
        if isinstance(value, str) and value not in _UNSET_ID:
            _put(user, path, value)
    gid = values.get("gid")
    if isinstance(gid, str):
        _put(user, ("group", "id"), gid)
    for key, path in (
        ("UID", ("name",)),
        ("AUID", ("audit", "name")),
        ("EUID", ("effective", "name")),
    ):
        value = values.get(key)
        if isinstance(value, str) and value != "unset":
            _put(user, path, value)
    if user:
        event["user"] = user
    account = values.get("acct") or values.get("user")
    if isinstance(account, str):
        set_user(event, account)
    name = user.get("name")
    if isinstance(name, str):
        add_related(event, "user", name)


def _put(node: dict[str, Any], path: tuple[str, ...], value: str) -> None:
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def _set_process(event: Event, record_type: str, values: dict[str, Any]) -> None:
    process: dict[str, Any] = {}
    for key, target in (("pid", "pid"), ("ppid", "parent")):
        value = values.get(key)
        if isinstance(value, str) and value.isdigit() and len(value) < 19:
            if target == "parent":
                process["parent"] = {"pid": int(value)}
            else:
                process["pid"] = int(value)
    for key, target in (("comm", "name"), ("exe", "executable"), ("cwd", "working_directory")):
        value = values.get(key)
        if isinstance(value, str):
            process[target] = value
    if record_type == "EXECVE":
        _set_arguments(process, values)
    title = values.get("proctitle")
    if isinstance(title, str):
        process["title"] = title
        process.setdefault("command_line", title)
    if process:
        event["process"] = process


def _set_arguments(process: dict[str, Any], values: dict[str, Any]) -> None:
    """EXECVE a0..aN -> process.args (in order) and the command line they make."""
    numbered = []
    for key, value in values.items():
        match = _EXECVE_ARG_RE.match(key)
        if match is not None and isinstance(value, str):
            numbered.append((int(match.group(1)), value))
    if not numbered:
        return
    numbered.sort()
    args = [value for _, value in numbered]
    process["args"] = args
    process["args_count"] = len(args)
    process["command_line"] = " ".join(args)
    if numbered[0][0] == 0:
        process.setdefault("executable", args[0])


def _set_network(event: Event, values: dict[str, Any]) -> None:
    """USER_* records name the remote end (addr=, hostname=); SYSCALL the architecture."""
    address = values.get("addr") or values.get("hostname")
    if isinstance(address, str):
        set_source(event, address)
    arch = values.get("arch")
    if isinstance(arch, str):
        event.setdefault("host", {})["architecture"] = _ARCHES.get(arch, arch)
