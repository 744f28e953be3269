"""Normalizer lines per second per raw-record format on one core, with syslog sshd as the
baseline measured in the same run; each format's ratio is its rate over the baseline's.
Never fails on a time."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from soc.normalize import NormalizeOptions, normalize  # noqa: E402

LINES = 10_000
ROUNDS = 5


def _eve(n: int) -> str:
    kind = ("alert", "flow", "dns", "http", "tls")[n % 5]
    body: dict[str, Any] = {
        "timestamp": f"2026-11-28T10:{n // 60 % 60:02d}:{n % 60:02d}.123456+0700",
        "flow_id": 1000 + n,
        "event_type": kind,
        "src_ip": f"203.0.113.{n % 250}",
        "src_port": 40000 + n % 20000,
        "dest_ip": "10.20.0.15",
        "dest_port": 443,
        "proto": "TCP",
    }
    body[kind] = {
        "alert": {
            "signature_id": 2024897,
            "signature": "ET SCAN x",
            "category": "c",
            "severity": 2,
        },
        "flow": {
            "pkts_toserver": 3,
            "pkts_toclient": 2,
            "bytes_toserver": 180,
            "bytes_toclient": 90,
        },
        "dns": {"type": "query", "id": n, "rrname": f"h{n}.example.vn", "rrtype": "A"},
        "http": {"hostname": "portal.vn", "url": f"/p?id={n}", "http_method": "GET", "status": 200},
        "tls": {"sni": "mail.vn", "version": "TLS 1.3", "ja3": {"hash": "e7d705a3"}},
    }[kind]
    return orjson.dumps(body).decode()


def _zeek(n: int) -> str:
    body = {
        "ts": 1764298800 + n / 10,
        "uid": f"C{n:08d}",
        "id.orig_h": f"10.20.0.{n % 250}",
        "id.orig_p": 40000 + n % 20000,
        "id.resp_h": "198.51.100.80",
        "id.resp_p": 53 if n % 2 else 443,
    }
    if n % 2:
        body.update(proto="udp", trans_id=n, query=f"h{n}.vn", qtype_name="A", rcode_name="NOERROR")
    else:
        body.update(proto="tcp", conn_state="SF", orig_pkts=10, orig_ip_bytes=900, resp_pkts=8)
    return orjson.dumps(body).decode()


def _winlogbeat(n: int) -> str:
    body = {
        "@timestamp": "2026-11-28T03:00:00.000Z",
        "winlog": {
            "channel": "Security",
            "event_id": "4625",
            "computer_name": "dc01",
            "record_id": n,
            "event_data": {"TargetUserName": f"u{n}", "IpAddress": "203.0.113.5", "LogonType": "3"},
        },
    }
    return orjson.dumps(body).decode()


def _evtx_records() -> list[str]:
    """The EVTX records of SigmaHQ's regression data, as the evtx package gives them (the form
    `soc scan` and the Windows agent read): real Sysmon, Security, PowerShell... events."""
    from evtx import PyEvtxParser

    sigma = Path(os.environ.get("SOC_SIGMA_PATH", ROOT.parent / "shared" / "sigma"))
    return [
        record["data"]
        for path in sorted((sigma / "regression_data").rglob("*.evtx"))
        for record in PyEvtxParser(str(path)).records_json()
    ]


_EVTX = _evtx_records()


GENERATORS: dict[str, tuple[str | None, Any]] = {
    "syslog sshd (baseline)": (
        None,
        lambda n: (
            f"<38>Nov 28 10:00:{n % 60:02d} web01 sshd[{n}]: Failed password for invalid"
            f" user u{n} from 203.0.113.{n % 250} port {40000 + n % 20000} ssh2"
        ),
    ),
    "syslog sudo": (
        None,
        lambda n: (
            f"<85>Nov 28 10:00:{n % 60:02d} web01 sudo: bob : TTY=pts/0 ; PWD=/home/bob ;"
            f" USER=root ; COMMAND=/usr/bin/id {n}"
        ),
    ),
    "syslog su": (
        None,
        lambda n: f"<86>Nov 28 10:00:00 web01 su[{n}]: FAILED SU (to root) u{n} on pts/0",
    ),
    "syslog cron": (
        None,
        lambda n: f"<78>Nov 28 10:00:00 web01 CRON[{n}]: (root) CMD (run-parts {n})",
    ),
    "syslog postfix": (
        None,
        lambda n: (
            f"<22>Nov 28 10:00:00 mail postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from"
            f" unknown[203.0.113.{n % 250}]: 554 5.7.1 <x{n}@gmail.com>: Relay access denied;"
            f" from=<a@b.vn> to=<x{n}@gmail.com> proto=ESMTP helo=<h>"
        ),
    ),
    "syslog dovecot": (
        None,
        lambda n: (
            f"<22>Nov 28 10:00:00 mail dovecot: imap-login: Disconnected (auth failed, 1"
            f" attempts in 2 secs): user=<u{n}>, method=PLAIN, rip=203.0.113.{n % 250},"
            f" lip=10.0.0.2, TLS, session=<s{n}>"
        ),
    ),
    "fortigate traffic": (
        None,
        lambda n: (
            f'<189>date=2026-11-28 time=10:00:{n % 60:02d} devname="FGT-SO" devid="FG100F" '
            f'eventtime=17958360{n % 100:02d}123456789 tz="+0700" logid="0000000013" '
            f'type="traffic" subtype="forward" level="notice" vd="root" srcip=10.1.{n % 250}.5 '
            f'srcport={40000 + n % 20000} srcintf="port1" dstip=203.0.113.{n % 250} dstport=443 '
            f'dstintf="wan1" sessionid={n} proto=6 action="close" policyid=1 service="HTTPS" '
            "duration=12 sentbyte=1200 rcvdbyte=5400 sentpkt=10 rcvdpkt=9"
        ),
    ),
    "cisco asa deny": (
        None,
        lambda n: (
            f"<164>Nov 28 2026 10:00:{n % 60:02d} asa01 : %ASA-4-106023: Deny tcp src "
            f"outside:203.0.113.{n % 250}/{40000 + n % 20000} dst inside:10.0.0.5/{n % 1024} "
            'by access-group "outside_access_in" [0x0, 0x0]'
        ),
    ),
    "ufw block (kernel)": (
        None,
        lambda n: (
            f"<4>Nov 28 10:00:{n % 60:02d} web01 kernel: [UFW BLOCK] IN=eth0 OUT= "
            f"SRC=203.0.113.{n % 250} DST=10.0.0.5 LEN=44 TTL=241 ID={n} PROTO=TCP "
            f"SPT={40000 + n % 20000} DPT={n % 1024} WINDOW=1024 RES=0x00 SYN URGP=0"
        ),
    ),
    "pfsense filterlog": (
        None,
        lambda n: (
            f"<134>Nov 28 10:00:{n % 60:02d} fw01 filterlog[1]: 5,,,1000000103,em0,match,block,"
            f"in,4,0x0,,64,{n},0,DF,6,tcp,60,203.0.113.{n % 250},10.0.0.5,"
            f"{40000 + n % 20000},{n % 1024},0,S,{n},,64240,,mss"
        ),
    ),
    "cef (deep security)": (
        None,
        lambda n: (
            f"<134>Nov 28 10:00:{n % 60:02d} dsa01 CEF:0|Trend Micro|Deep Security Agent|20.0|"
            f"4000010|Web Reputation|6|src=10.1.{n % 250}.3 spt={40000 + n % 20000} "
            f"dst=203.0.113.{n % 250} dpt=80 act=Block request=http://bad.example/{n}.php?a=1 "
            f"suser=bob msg=Blocked by WRS rt={1795836000000 + n} cs1Label=Policy cs1=Base"
        ),
    ),
    "nginx": (
        "nginx",
        lambda n: (
            f'203.0.113.{n % 250} - - [28/Nov/2026:10:00:{n % 60:02d} +0700] "GET'
            f' /tin-tuc?id={n} HTTP/1.1" 200 5120 "-" "Mozilla/5.0 (Windows NT 10.0)"'
        ),
    ),
    "iis": (
        "iis",
        lambda n: (
            f"2026-11-28 03:00:{n % 60:02d} 10.0.0.5 GET /default.aspx id={n} 443 -"
            f" 203.0.113.{n % 250} Mozilla/5.0+(Windows) - 200 0 0 15"
        ),
    ),
    "auditd": (
        "auditd",
        lambda n: (
            f"type=SYSCALL msg=audit(1764298800.{n % 1000:03d}:{n}): arch=c000003e"
            f" syscall=59 success=yes exit=0 a0=55d5 a1=55d6 a2=55d7 a3=0 items=2 ppid=1 pid={n}"
            " auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3"
            ' comm="cat" exe="/usr/bin/cat" key="shadow"'
        ),
    ),
    "suricata eve": ("suricata", _eve),
    "zeek json": ("zeek", _zeek),
    "windows (winlogbeat json)": ("windows", _winlogbeat),
    "windows (nxlog json over syslog)": (
        None,
        lambda n: (
            "<14>Nov 28 10:00:00 dc01 "
            + orjson.dumps(
                {
                    "EventTime": f"2026-11-28 10:00:{n % 60:02d}",
                    "Hostname": "DC01.so.local",
                    "Keywords": -9218868437227405312,
                    "SeverityValue": 4,
                    "EventID": 4625,
                    "SourceName": "Microsoft-Windows-Security-Auditing",
                    "Channel": "Security",
                    "RecordNumber": n,
                    "ProcessID": 636,
                    "ThreadID": 4400,
                    "Message": "An account failed to log on.",
                    "TargetUserName": f"user{n % 50}",
                    "TargetDomainName": "SO",
                    "Status": "0xc000006d",
                    "LogonType": "3",
                    "IpAddress": f"203.0.113.{n % 250}",
                    "IpPort": str(40000 + n % 20000),
                    "SourceModuleType": "im_msvistalog",
                }
            ).decode()
        ),
    ),
    **({"windows (evtx json)": ("windows", lambda n: _EVTX[n % len(_EVTX)])} if _EVTX else {}),
    "json (auto-detect: eve)": ("json", _eve),
    "ecs": (
        "ecs",
        lambda n: orjson.dumps(
            {
                "@timestamp": "2026-11-28T03:00:00Z",
                "event": {"dataset": "netmeta.flow"},
                "source": {"ip": "10.0.0.1", "port": n % 65535},
            }
        ).decode(),
    ),
    "plain": ("plain", lambda n: f"appliance message number {n} with some text"),
}


def _records(kind: str | None, make: Any) -> list[dict[str, Any]]:
    records = []
    for n in range(LINES):
        record: dict[str, Any] = {
            "id": f"r{n}",
            "received_at": "2026-11-28T03:00:00.000000Z",
            "source": {"type": "agent", "peer": {"ip": "10.1.2.3", "port": 51514}},
            "organization": {"id": "so-ttt"},
            "data": make(n),
        }
        if kind is not None:
            record["format"] = kind
        records.append(record)
    return records


def _seconds(records: list[dict[str, Any]], options: NormalizeOptions) -> float:
    started = time.perf_counter()
    for record in records:
        normalize(record, options)
    return time.perf_counter() - started


def main() -> int:
    options = NormalizeOptions()
    inputs = {name: _records(kind, make) for name, (kind, make) in GENERATORS.items()}
    best = dict.fromkeys(inputs, float("inf"))
    # Rounds interleave the formats, so a burst of load from other processes on this shared
    # machine lands on every format alike and the best of each is compared with the baseline's.
    for _ in range(ROUNDS):
        for name, records in inputs.items():
            best[name] = min(best[name], _seconds(records, options))
    rates = {name: LINES / seconds for name, seconds in best.items()}
    baseline = rates["syslog sshd (baseline)"]
    print(f"normalize: lines/s on one core, best of {ROUNDS} interleaved rounds x {LINES} lines")
    for name, rate in rates.items():
        print(f"  {name:28s} {rate:>10,.0f} lines/s   ratio {rate / baseline:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
