"""Loading Sigma rules from files into a routed, compiled rule set.

A broken file or a rule we cannot evaluate is reported with its path and reason and the other
rules keep running: one typo in one rule must not blind the whole SOC.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.rule import SigmaRule

from soc.detect.compiler import CompileError, Event, Predicate, compile_condition, lookup

log = logging.getLogger(__name__)

#: Files beside rules that are not rules: their test events.
TEST_SUFFIX = ".tests.yml"


@dataclass(frozen=True, slots=True)
class Route:
    """The events a log source stands for: field -> accepted values (case-insensitive)."""

    logsource: tuple[tuple[str, str], ...]
    where: tuple[tuple[str, frozenset[str]], ...]

    def admits(self, event: Event) -> bool:
        for name, accepted in self.where:
            value = lookup(event, name)
            values = value if isinstance(value, list) else [value]
            if not any(isinstance(v, str) and v.casefold() in accepted for v in values):
                return False
        return True


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    title: str
    level: str
    status: str
    tags: tuple[str, ...]
    description: str
    author: str
    references: tuple[str, ...]
    path: Path
    logsource: tuple[tuple[str, str], ...]
    matches: Predicate
    #: ATT&CK technique ids from tags such as `attack.t1110.001` -> `T1110.001`.
    techniques: tuple[str, ...] = ()
    #: ATT&CK tactics from tags such as `attack.credential_access`.
    tactics: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """A file or rule that is not evaluated, and why."""

    path: Path
    reason: str
    rule_id: str | None = None
    title: str | None = None


@dataclass
class RuleSet:
    routes: list[tuple[Route, list[CompiledRule]]] = field(default_factory=list)
    unrouted: list[CompiledRule] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)

    @property
    def rules(self) -> list[CompiledRule]:
        return [rule for _, rules in self.routes for rule in rules]

    def match(self, event: Event) -> Iterator[CompiledRule]:
        for route, rules in self.routes:
            if route.admits(event):
                for rule in rules:
                    if rule.matches(event):
                        yield rule


def load_routes(path: Path | None = None) -> list[Route]:
    """Log-source routes from YAML (the packaged `logsources.yml` when no path is given)."""
    if path is None:
        text = resources.files("soc.detect").joinpath("logsources.yml").read_text("utf-8")
        origin = "soc/detect/logsources.yml"
    else:
        text, origin = path.read_text("utf-8"), str(path)
    entries = yaml.safe_load(text) or []
    routes = []
    for index, entry in enumerate(entries):
        try:
            logsource = tuple(sorted((k, str(v).lower()) for k, v in entry["logsource"].items()))
            where = tuple(
                (name, frozenset(str(v).casefold() for v in values))
                for name, values in entry["where"].items()
            )
        except (KeyError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"{origin}: entry {index}: expected 'logsource' and 'where' mappings ({exc})"
            ) from None
        routes.append(Route(logsource, where))
    return routes


def rule_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Rule files under the given files or directories, in a stable order."""
    for path in paths:
        if path.is_file():
            yield path
            continue
        for candidate in sorted(path.rglob("*.yml")):
            if candidate.name.endswith(TEST_SUFFIX) or "pipelines" in candidate.parts:
                continue
            yield candidate


def _logsource_key(rule: SigmaRule) -> tuple[tuple[str, str], ...]:
    source = rule.logsource
    pairs = [
        (name, str(value).lower())
        for name, value in (
            ("product", source.product),
            ("category", source.category),
            ("service", source.service),
        )
        if value
    ]
    return tuple(sorted(pairs))


def _compile(rule: SigmaRule, path: Path) -> CompiledRule:
    predicates = [compile_condition(cond.parsed) for cond in rule.detection.parsed_condition]
    matches: Predicate = (
        predicates[0]
        if len(predicates) == 1
        else (lambda event: any(predicate(event) for predicate in predicates))
    )
    tags = tuple(str(tag) for tag in rule.tags)
    return CompiledRule(
        techniques=tuple(
            tag.split(".", 1)[1].upper()
            for tag in tags
            if re.fullmatch(r"attack\.t\d{4}(\.\d{3})?", tag)
        ),
        tactics=tuple(
            tag.split(".", 1)[1] for tag in tags if re.fullmatch(r"attack\.[a-z]+(_[a-z]+)*", tag)
        ),
        id=str(rule.id),
        title=rule.title,
        level=str(rule.level) if rule.level else "medium",
        status=str(rule.status) if rule.status else "experimental",
        tags=tags,
        description=rule.description or "",
        author=rule.author or "",
        references=tuple(rule.references or ()),
        path=path,
        logsource=_logsource_key(rule),
        matches=matches,
    )


def _load_file(path: Path) -> tuple[list[CompiledRule], list[RuleProblem]]:
    try:
        text = path.read_text("utf-8")
        collection = SigmaCollection.from_yaml(text, collect_errors=True)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, SigmaError) as exc:
        return [], [RuleProblem(path, f"cannot load: {exc}")]
    compiled: list[CompiledRule] = []
    problems = [RuleProblem(path, f"cannot load: {error}") for error in collection.errors]
    for rule in collection.rules:
        ident = str(rule.id) if rule.id else None
        if isinstance(rule, SigmaCorrelationRule):
            problems.append(
                RuleProblem(path, "correlation rules are not evaluated yet", ident, rule.title)
            )
            continue
        if rule.errors:
            reasons = "; ".join(str(error) for error in rule.errors)
            problems.append(RuleProblem(path, f"invalid rule: {reasons}", ident, rule.title))
            continue
        if ident is None:
            problems.append(RuleProblem(path, "rule has no id", None, rule.title))
            continue
        try:
            compiled.append(_compile(rule, path))
        except (CompileError, SigmaError) as exc:
            problems.append(RuleProblem(path, f"cannot compile: {exc}", ident, rule.title))
    return compiled, problems


def load_rules(paths: Sequence[Path], routes: Sequence[Route] | None = None) -> RuleSet:
    """Load every rule file under `paths`; problems are collected, never raised."""
    by_logsource: dict[tuple[tuple[str, str], ...], Route] = {
        route.logsource: route for route in (routes if routes is not None else load_routes())
    }
    grouped: dict[Route, list[CompiledRule]] = {}
    ruleset = RuleSet()
    seen: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            ruleset.problems.append(RuleProblem(path, "rule path does not exist"))
    for path in rule_files(p for p in paths if p.exists()):
        compiled, problems = _load_file(path)
        ruleset.problems.extend(problems)
        for rule in compiled:
            if rule.id in seen:
                ruleset.problems.append(
                    RuleProblem(path, f"duplicate rule id, first in {seen[rule.id]}", rule.id)
                )
                continue
            seen[rule.id] = path
            route = by_logsource.get(rule.logsource)
            if route is None:
                ruleset.unrouted.append(rule)
            else:
                grouped.setdefault(route, []).append(rule)
    ruleset.routes = list(grouped.items())
    for problem in ruleset.problems:
        log.warning(
            "rule not loaded path=%s rule_id=%s reason=%s",
            problem.path,
            problem.rule_id,
            problem.reason,
        )
    if ruleset.unrouted:
        log.warning("rules without a log-source route count=%d", len(ruleset.unrouted))
    return ruleset


def rule_summary(rule: CompiledRule) -> Mapping[str, Any]:
    """The rule as it is copied into alerts (ECS `rule.*`, keeping author and reference as the
    Detection Rule License asks)."""
    summary: dict[str, Any] = {
        "id": rule.id,
        "name": rule.title,
        "level": rule.level,
        "ruleset": "sigma",
        "tags": list(rule.tags),
    }
    if rule.description:
        summary["description"] = rule.description
    if rule.author:
        summary["author"] = rule.author
    if rule.references:
        summary["reference"] = rule.references[0]
    return summary
