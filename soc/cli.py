"""The `soc` command line (DESIGN.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from soc import __version__, heap, users_cli
from soc.config import Config, ConfigError, load_config
from soc.logs import setup_logging


def _positive_int(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soc", description="Provincial SOC platform.")
    parser.add_argument("--version", action="version", version=f"soc {__version__}")
    parser.add_argument(
        "--config", type=Path, help="YAML file (default: $SOC_CONFIG or ./soc.yaml)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the whole platform in one process")
    run.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    run.add_argument("--data-dir", metavar="DIR", help="where the store and secrets live")
    run.add_argument("--http", metavar="HOST:PORT", help="API and console address")
    run.add_argument("--syslog", metavar="HOST:PORT", help="syslog UDP and TCP address")
    run.add_argument("--rules", metavar="PATH", action="append", help="rule path (repeatable)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    for name, text in (
        ("engine", "normalize, detect, correlate and index (distributed deployment)"),
        ("api", "the HTTP API and console (distributed deployment)"),
    ):
        part = commands.add_parser(name, help=text)
        part.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
        part.add_argument("--data-dir", metavar="DIR", help="where secrets live")
        part.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
        if name == "api":
            part.add_argument("--http", metavar="HOST:PORT", help="API and console address")
        else:
            part.add_argument("--rules", metavar="PATH", action="append", help="rule path")
            part.add_argument(
                "--stages",
                metavar="LIST",
                help="the stages this process runs, comma-separated (default: all of "
                "normalize,detect,index,correlate,incidents); pipeline.stages",
            )
            part.add_argument(
                "--nice",
                type=int,
                metavar="N",
                help="run at this niceness, 0-19, yielding the CPU to the host's other "
                "processes (for stages whose work can wait, such as index); pipeline.nice",
            )
    users_cli.add_parser(commands)
    collector = commands.add_parser("collector", help="an edge collector (distributed deployment)")
    kinds = collector.add_subparsers(dest="kind", required=True, metavar="KIND")
    syslog = kinds.add_parser("syslog", help="syslog over UDP, TCP and TLS into the bus")
    syslog.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    syslog.add_argument("--syslog", metavar="HOST:PORT", help="listen address")
    syslog.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    netmeta = kinds.add_parser("netmeta", help="flows, DNS, HTTP and TLS from packets into the bus")
    netmeta.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    netmeta.add_argument("--interface", metavar="IF", help="capture live on this interface")
    netmeta.add_argument("--bpf", metavar="FILTER", help="BPF capture filter (libpcap syntax)")
    netmeta.add_argument("--pcap", metavar="FILE", type=Path, nargs="+", help="replay, then exit")
    netmeta.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    agent = commands.add_parser("agent", help="tail files and push them to the HTTP intake")
    agent.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    agent.add_argument("--data-dir", metavar="DIR", help="default parent of agent.state_dir")
    agent.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    rules = commands.add_parser("rules", help="check, test, list and convert rules")
    actions = rules.add_subparsers(dest="action", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="load and compile rules, report each one not run")
    check.add_argument("paths", nargs="*", type=Path, help="default: rules.paths")
    check.add_argument("--json", action="store_true", help="a JSON summary on stdout")
    test = actions.add_parser("test", help="run each rule's own test events")
    test.add_argument("paths", nargs="*", type=Path, help="default: rules.paths")
    listing = actions.add_parser("list", help="list the rules that are loaded")
    listing.add_argument("paths", nargs="*", type=Path, help="default: rules.paths")
    listing.add_argument("--json", action="store_true", help="JSON lines on stdout")
    convert = actions.add_parser("convert", help="a rule as an Elasticsearch query, for hunting")
    convert.add_argument("rule", type=Path, help="a rule file")
    convert.add_argument("--target", choices=("lucene", "eql", "esql"), default="lucene")

    doctor = commands.add_parser("doctor", help="check configuration, services, disk, clock")
    doctor.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    doctor.add_argument("--json", action="store_true", help="the checks as JSON on stdout")
    doctor.add_argument(
        "--min-free-gib", type=float, default=5.0, help="warn under this much free disk"
    )

    notifier = commands.add_parser("notifier", help="send notifications (distributed deployment)")
    notifier.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    notifier.add_argument("--data-dir", metavar="DIR", help="where the outbox lives")
    notifier.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    notify = commands.add_parser("notify", help="notification tools")
    notify_actions = notify.add_subparsers(dest="notify_action", required=True, metavar="ACTION")
    notify_test = notify_actions.add_parser("test", help="send a test message through a channel")
    notify_test.add_argument("channel", help="a channel name from notify.channels")
    notify_test.add_argument("--to", help="recipient (default: the first a route names)")
    notify_test.add_argument("--language", choices=("vi", "en"), default="vi")
    notify_test.add_argument("--data-dir", metavar="DIR", help="where the outbox lives")

    scan = commands.add_parser("scan", help="detection over files (EVTX, JSON, syslog, web logs)")
    scan.add_argument("paths", nargs="+", type=Path, help="files or directories")
    scan.add_argument("--rules", metavar="PATH", type=Path, action="append", help="rule path")
    scan.add_argument("--output", "-o", type=Path, help="where alerts go (default: stdout)")
    scan.add_argument(
        "--format",
        choices=("jsonl", "csv"),
        default="jsonl",
        help="alerts as JSON lines (every field) or a CSV timeline for a spreadsheet",
    )
    scan.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    scan.add_argument(
        "--jobs",
        "-j",
        type=_positive_int,
        help="worker processes reading and matching files (default: one per CPU, at most 8)",
    )
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "http", None):
        overrides["http"] = {"listen": args.http}
    if getattr(args, "syslog", None):
        overrides["syslog"] = {"listen": args.syslog}
    if args.command in {"run", "engine"} and args.rules:
        overrides["rules"] = {"paths": args.rules}
    if getattr(args, "log_level", None):
        overrides["log"] = {"level": args.log_level}
    # `--nice 0` is a value, so only what was not given (None) is left out.
    pipeline = {k: v for k in ("stages", "nice") if (v := getattr(args, k, None)) is not None}
    if pipeline:
        overrides["pipeline"] = pipeline
    netmeta = {k: getattr(args, k, None) for k in ("interface", "bpf")}
    if any(netmeta.values()):
        overrides["netmeta"] = {k: v for k, v in netmeta.items() if v}
    return overrides


_PARTS = {
    "run": frozenset({"collector", "engine", "api", "notifier"}),
    "engine": frozenset({"engine"}),
    "api": frozenset({"api"}),
    "collector": frozenset({"collector"}),
    "notifier": frozenset({"notifier"}),
}


def _run(config: Config, command: str) -> int:
    from soc.embedded import run_parts

    setup_logging(config.log.level, config.log.format)
    if "engine" in _PARTS[command]:
        _lower_priority(config.pipeline.nice)
    return asyncio.run(run_parts(config, _PARTS[command]))


def _lower_priority(nice: int) -> None:
    """Run at niceness `nice` unless already at least that nice. Linux keeps a niceness per
    thread, and a thread starts with its creator's: set here, before the event loop or any
    client starts a thread, it holds for every thread of the process."""
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def _load(config: Config, paths: Sequence[Path]) -> Any:
    from soc.detect.rules import load_rules, options_from_config

    setup_logging("error")
    chosen = list(paths) or [Path(p) for p in config.rules.paths]
    return load_rules(chosen, options_from_config(config.rules))


def _rules_check(config: Config, args: argparse.Namespace) -> int:
    ruleset = _load(config, args.paths)
    not_run = [
        {"path": str(p.path), "id": p.rule_id, "title": p.title, "reason": p.reason}
        for p in ruleset.problems
    ] + [
        {
            "path": str(rule.path),
            "id": rule.id,
            "title": rule.title,
            "reason": "no route for log source " + ",".join(f"{k}={v}" for k, v in rule.logsource),
        }
        for rule in ruleset.unrouted
    ]
    summary = {
        "loaded": ruleset.files,
        "compiled": len(ruleset.rules) + len(ruleset.unrouted) + len(ruleset.disabled),
        "routed": len(ruleset.rules),
        "correlations": len(ruleset.correlations),
        "disabled": [
            {"path": str(rule.path), "id": rule.id, "reason": reason}
            for rule, reason in ruleset.disabled
        ],
        "not_run": not_run,
        "errors": len(ruleset.problems),
    }
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        for item in not_run:
            rule = f" rule={item['id']}" if item["id"] else ""
            print(f"{item['path']}:{rule} {item['reason']}")
        print(
            f"{summary['loaded']} files, {summary['compiled']} rules compiled "
            f"({summary['routed']} routed, {len(ruleset.unrouted)} unrouted, "
            f"{len(ruleset.disabled)} disabled), {summary['correlations']} correlations, "
            f"{summary['errors']} errors"
        )
    return 1 if ruleset.problems else 0


def _rules_test(config: Config, args: argparse.Namespace) -> int:
    from soc.detect.ruletests import run_rule_tests
    from soc.normalize import NormalizeOptions

    ruleset = _load(config, args.paths)
    options = NormalizeOptions(timezone=ZoneInfo(config.syslog.timezone))
    passed = failed = untested = 0
    for result in run_rule_tests(ruleset, options):
        if result.failures is None:
            untested += 1
        elif result.failures:
            failed += 1
            for failure in result.failures:
                print(f"FAIL {failure}")
        else:
            passed += 1
    for problem in ruleset.problems:
        print(f"ERROR {problem.path}: {problem.reason}")
    print(f"rules: {passed} passed, {failed} failed, {untested} without tests")
    return 1 if failed or ruleset.problems else 0


def _rules_list(config: Config, args: argparse.Namespace) -> int:
    ruleset = _load(config, args.paths)
    rows: list[dict[str, Any]] = [
        {
            "id": rule.id,
            "title": rule.title,
            "level": rule.level,
            "status": rule.status,
            "logsource": dict(rule.logsource),
            "state": state,
            "path": str(rule.path),
        }
        for state, rules in (("routed", ruleset.rules), ("unrouted", ruleset.unrouted))
        for rule in rules
    ]
    rows += [
        {
            "id": str(rule.id),
            "title": rule.title,
            "level": str(rule.level) if rule.level else "medium",
            "status": str(rule.status) if rule.status else "experimental",
            "logsource": {"correlation": rule.type.value if rule.type else "?"},
            "state": "correlation",
            "path": str(path),
        }
        for rule, path in ruleset.correlations
    ]
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
        else:
            source = ",".join(f"{k}={v}" for k, v in row["logsource"].items())
            print(f"{row['id']}  {row['level']:<13} {row['state']:<11} {source:<40} {row['title']}")
    return 0


def _rules_convert(config: Config, args: argparse.Namespace) -> int:
    from sigma.backends.elasticsearch.elasticsearch_eql import EqlBackend
    from sigma.backends.elasticsearch.elasticsearch_esql import ESQLBackend
    from sigma.backends.elasticsearch.elasticsearch_lucene import LuceneBackend
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError

    from soc.detect.pipelines import resolve_pipeline
    from soc.detect.rules import pipeline_files

    paths = [Path(p) for p in config.rules.paths]
    pipeline = resolve_pipeline([*config.rules.pipelines, *pipeline_files(paths)])
    backends = {"lucene": LuceneBackend, "eql": EqlBackend, "esql": ESQLBackend}
    try:
        collection = SigmaCollection.from_yaml(args.rule.read_text("utf-8"))
        backend = backends[args.target](processing_pipeline=pipeline)
        for query in backend.convert(collection):
            print(query)
    except (OSError, SigmaError) as exc:
        print(f"soc: cannot convert {args.rule}: {exc}", file=sys.stderr)
        return 1
    return 0


def _scan(config: Config, args: argparse.Namespace) -> int:
    from soc.scan.run import ScanError, default_jobs, print_summary, scan

    ruleset = _load(config, args.rules or [])
    output = args.output.open("wb") if args.output else sys.stdout.buffer
    progress = sys.stderr if sys.stderr.isatty() else None
    heap.settle()
    try:
        summary = scan(
            args.paths,
            ruleset,
            output,
            timezone=ZoneInfo(config.syslog.timezone),
            progress=progress,
            jobs=args.jobs or default_jobs(),
            output_format=args.format,
        )
    except ScanError as exc:
        print(f"soc scan: {exc}", file=sys.stderr)
        return 1
    finally:
        heap.release()
        if args.output:
            output.close()
        else:
            output.flush()
    print_summary(summary)
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2))
    return 130 if summary.interrupted else 0  # 128 + SIGINT, as a shell reports it


def _doctor(args: argparse.Namespace) -> int:
    from soc.doctor import Options, diagnose, report

    setup_logging("error")
    # An unreachable broker is reported as a check; the client's own error lines are noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    options = Options(config_file=args.config, min_free_gib=args.min_free_gib)
    return report(asyncio.run(diagnose(options)), sys.stdout, args.json)


def _agent(config: Config) -> int:
    from collectors.agent.agent import run_agent

    setup_logging(config.log.level, config.log.format)
    try:
        return asyncio.run(run_agent(config))
    except ConfigError as exc:
        print(f"soc: configuration error: {exc}", file=sys.stderr)
        return 2


def _notify_test(config: Config, args: argparse.Namespace) -> int:
    from soc.notify.cli import send_test

    setup_logging("error")
    try:
        return asyncio.run(send_test(config, args.channel, args.to, args.language, sys.stdout))
    except ConfigError as exc:
        print(f"soc: configuration error: {exc}", file=sys.stderr)
        return 2


def _netmeta(config: Config, args: argparse.Namespace) -> int:
    from collectors.netmeta.main import run_netmeta

    setup_logging(config.log.level, config.log.format)
    return asyncio.run(run_netmeta(config, args.pcap or []))


def entry() -> int:
    """The `soc` command. Output piped into `head` ends quietly, as command-line tools do; only
    the program itself changes that signal, never a caller of `main` (a test process would die
    of the next write to a closed pipe). Ctrl-C ends it with status 130 and no traceback
    (`soc scan` reports what it read first)."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        return main()
    except KeyboardInterrupt:
        print("soc: interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "doctor":
        return _doctor(args)
    try:
        config = load_config(file=args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"soc: configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "collector" and args.kind == "netmeta":
        return _netmeta(config, args)
    if args.command in _PARTS:
        return _run(config, args.command)
    if args.command == "scan":
        return _scan(config, args)
    if args.command == "users":
        return users_cli.run(config, args)
    if args.command == "agent":
        return _agent(config)
    if args.command == "notify":
        return _notify_test(config, args)
    handlers = {
        "check": _rules_check,
        "test": _rules_test,
        "list": _rules_list,
        "convert": _rules_convert,
    }
    return handlers[args.action](config, args)


if __name__ == "__main__":
    sys.exit(main())
