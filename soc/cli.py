"""The `soc` command line (DESIGN.md, "Command line")."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soc import __version__
from soc.config import ConfigError, load_config
from soc.logs import setup_logging


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="soc", description="Provincial SOC platform.")
    parser.add_argument("--version", action="version", version=f"soc {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the whole platform in one process")
    run.add_argument("--config", type=Path, help="YAML file (default: $SOC_CONFIG or ./soc.yaml)")
    run.add_argument("--data-dir", metavar="DIR", help="where the store and secrets live")
    run.add_argument("--http", metavar="HOST:PORT", help="API and console address")
    run.add_argument("--syslog", metavar="HOST:PORT", help="syslog UDP and TCP address")
    run.add_argument("--rules", metavar="PATH", action="append", help="rule path (repeatable)")
    run.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    rules = commands.add_parser("rules", help="work with rule sets")
    rule_commands = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rule_commands.add_parser("check", help="load and compile rules, report problems")
    check.add_argument("paths", nargs="+", type=Path)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.data_dir:
        overrides["data_dir"] = args.data_dir
    if args.http:
        overrides["http"] = {"listen": args.http}
    if args.syslog:
        overrides["syslog"] = {"listen": args.syslog}
    if args.rules:
        overrides["rules"] = {"paths": args.rules}
    if args.log_level:
        overrides["log"] = {"level": args.log_level}
    return overrides


def _run(args: argparse.Namespace) -> int:
    from soc.embedded import run_embedded

    try:
        config = load_config(file=args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"soc: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log.level, config.log.format)
    return asyncio.run(run_embedded(config))


def _rules_check(args: argparse.Namespace) -> int:
    from soc.detect.rules import load_rules

    setup_logging("error")
    ruleset = load_rules(args.paths)
    for problem in ruleset.problems:
        rule = f" rule={problem.rule_id}" if problem.rule_id else ""
        print(f"{problem.path}:{rule} {problem.reason}")
    for unrouted in ruleset.unrouted:
        source = ",".join(f"{k}={v}" for k, v in unrouted.logsource)
        print(f"{unrouted.path}: rule={unrouted.id} not evaluated: no route for {source}")
    print(
        f"{len(ruleset.rules)} rules compiled, {len(ruleset.unrouted)} unrouted, "
        f"{len(ruleset.problems)} problems"
    )
    return 1 if ruleset.problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        return _run(args)
    return _rules_check(args)


if __name__ == "__main__":
    sys.exit(main())
