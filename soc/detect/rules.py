"""Loading Sigma rules from files into a routed, compiled, indexed rule set.

Each rule goes through pySigma (parsing), the configured processing pipelines (field mapping to
ECS), our compiler (predicates) and log-source routing. A broken file or a rule we cannot
evaluate is reported with its path and reason and the other rules keep running: one typo in one
rule must not blind the whole SOC. Rules switched off by configuration are listed as disabled.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from soc.config import RulesConfig
from soc.detect.compiler import (
    CompileError,
    CompileOptions,
    Event,
    Predicate,
    any_of,
    compile_condition,
)
from soc.detect.index import (
    NO_HITS,
    NO_PAIR,
    KeywordScan,
    Requirement,
    RouteIndex,
    rule_requirements,
)
from soc.detect.memo import ValueMemo, compiling_with
from soc.detect.pipelines import resolve_pipeline
from soc.detect.routing import LogsourceKey, Route, RouteTable, load_routes, logsource_key

log = logging.getLogger(__name__)

#: Files beside rules that are not rules: their test events.
TEST_SUFFIX = ".tests.yml"
#: Sigma levels in increasing order of severity.
LEVELS = ("informational", "low", "medium", "high", "critical")
_TECHNIQUE = re.compile(r"attack\.t\d{4}(\.\d{3})?")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TACTIC = re.compile(r"attack\.[a-z]+(?:[_-][a-z]+)*")


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
    logsource: LogsourceKey
    matches: Predicate
    #: The rule's Sigma `name`, by which correlation rules may reference it.
    name: str | None = None
    #: ATT&CK technique ids from tags such as `attack.t1110.001` -> `T1110.001`.
    techniques: tuple[str, ...] = ()
    #: ATT&CK tactics from tags such as `attack.credential_access`.
    tactics: tuple[str, ...] = ()
    #: Sets of literals of which, for each set, one must occur for the rule to match (none:
    #: always evaluated).
    requirements: tuple[Requirement, ...] = ()
    #: What an alert of the rule says happened: `details` (as Hayabusa's rules write it), with
    #: `%field%` placeholders the event fills (`soc.detect.alerts.render_details`).
    details: str | None = None
    #: The pySigma rule after field mapping, kept for conversion to queries.
    sigma: SigmaRule | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RuleProblem:
    """A file or rule that is not evaluated, and why."""

    path: Path
    reason: str
    rule_id: str | None = None
    title: str | None = None


@dataclass(frozen=True, slots=True)
class RuleFilter:
    """Which loaded rules run. Disabled rules are listed, not reported as problems."""

    disabled_ids: frozenset[str] = frozenset()
    disabled_paths: tuple[str, ...] = ()
    statuses: frozenset[str] | None = None
    min_level: str = "informational"

    def reason_disabled(self, rule: CompiledRule) -> str | None:
        if rule.id in self.disabled_ids or (rule.name and rule.name in self.disabled_ids):
            return "disabled by id"
        text = str(rule.path)
        if any(fnmatch.fnmatch(text, pattern) for pattern in self.disabled_paths):
            return "disabled by path"
        if self.statuses is not None and rule.status not in self.statuses:
            return f"status {rule.status} not enabled"
        if LEVELS.index(rule.level) < LEVELS.index(self.min_level):
            return f"level {rule.level} below {self.min_level}"
        return None


@dataclass(frozen=True, slots=True)
class LoadOptions:
    #: Installed pipeline names or YAML files; `pipelines/*.yml` inside each rule directory are
    #: added automatically, so a rule set ships its own field mappings.
    pipelines: tuple[str, ...] = ("ecs_windows",)
    routes: tuple[Route, ...] | None = None
    compile: CompileOptions = field(default_factory=CompileOptions)
    filter: RuleFilter = field(default_factory=RuleFilter)


@dataclass
class RuleSet:
    routes: list[RouteIndex] = field(default_factory=list)
    table: RouteTable = field(default_factory=lambda: RouteTable([]))
    keywords: KeywordScan = field(default_factory=lambda: KeywordScan([]))
    unrouted: list[CompiledRule] = field(default_factory=list)
    disabled: list[tuple[CompiledRule, str]] = field(default_factory=list)
    problems: list[RuleProblem] = field(default_factory=list)
    correlations: list[tuple[SigmaCorrelationRule, Path]] = field(default_factory=list)
    #: What the index and the rules' field tests answered for values seen before (one budget).
    memo: ValueMemo = field(default_factory=ValueMemo)
    #: Rule files read.
    files: int = 0

    @property
    def rules(self) -> list[CompiledRule]:
        return [rule for index in self.routes for rule in index.rules]

    def match(self, event: Event) -> list[CompiledRule]:
        """Rules that match the event: routed, narrowed by the index, then evaluated. (A list,
        not a generator: resuming one per rule matched and per route cost more than the list.)"""
        admitted = self.table.admitted(event)
        keywords = self.keywords
        hits = keywords.hits(event) if not keywords.routes.isdisjoint(admitted) else NO_HITS
        matched: list[CompiledRule] = []
        routes = self.routes
        for route_position in admitted:
            index = routes[route_position]
            predicates = index.predicates
            for position in index.candidates(event, hits.get(route_position, NO_PAIR)):
                if predicates[position](event):
                    matched.append(index.rules[position])
        return matched

    def match_unindexed(self, event: Event) -> Iterator[CompiledRule]:
        """Every routed rule evaluated in full: the reference the index must agree with."""
        for index in self.routes:
            if index.route.admits(event):
                yield from (rule for rule in index.rules if rule.matches(event))


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


#: The platform's own pipelines: the field mapping of its normalizers (Linux, web, network,
#: antivirus), shipped in rules/pipelines/ beside the package. Every load applies them,
#: whichever rule directories it reads: `soc scan --rules <SigmaHQ>/rules` alone must map
#: SigmaHQ's Linux and web fields as the engine does.
SHIPPED_PIPELINES = Path(__file__).resolve().parents[2] / "rules" / "pipelines"


def pipeline_files(paths: Iterable[Path]) -> list[str]:
    """The shipped pipelines, then `pipelines/*.yml` inside each rule directory given."""
    folders = [SHIPPED_PIPELINES.parent, *(path for path in paths if path.is_dir())]
    return [str(p) for folder in folders for p in sorted(folder.glob("pipelines/*.yml"))]


def _parse(
    files: Iterable[Path], problems: list[RuleProblem]
) -> list[tuple[SigmaRule | SigmaCorrelationRule, Path]]:
    parsed: list[tuple[SigmaRule | SigmaCorrelationRule, Path]] = []
    for path in files:
        try:
            # libyaml's loader: pySigma's own from_yaml uses the pure-Python one, which made
            # YAML parsing 80% of the 15 s it took to load the SigmaHQ rule set.
            documents = list(yaml.load_all(path.read_text("utf-8"), Loader=_YAML_LOADER))
            strays = [doc for doc in documents if doc is not None and not isinstance(doc, dict)]
            if strays:
                kind = type(strays[0]).__name__
                raise ValueError(f"a rule must be a YAML mapping, found a {kind}")
            collection = SigmaCollection.from_dicts(
                [doc for doc in documents if doc is not None],
                collect_errors=True,
                resolve_references=False,
            )
        except (
            OSError,
            UnicodeDecodeError,
            yaml.YAMLError,
            SigmaError,
            TypeError,
            ValueError,
        ) as exc:
            problems.append(RuleProblem(path, f"cannot load: {exc}"))
            continue
        problems.extend(RuleProblem(path, f"cannot load: {error}") for error in collection.errors)
        for rule in collection.rules:
            ident = str(rule.id) if rule.id else None
            if rule.errors:
                reasons = "; ".join(str(error) for error in rule.errors)
                problems.append(RuleProblem(path, f"invalid rule: {reasons}", ident, rule.title))
            elif isinstance(rule, (SigmaRule, SigmaCorrelationRule)):
                parsed.append((rule, path))
    return parsed


def _compile(
    rule: SigmaRule, path: Path, pipeline: ProcessingPipeline, options: CompileOptions
) -> CompiledRule:
    key = logsource_key(rule.logsource.product, rule.logsource.category, rule.logsource.service)
    pipeline.apply(rule)
    # `parsed` re-parses on every access: take each tree once.
    trees = [cond.parsed for cond in rule.detection.parsed_condition]
    predicates = [compile_condition(tree, options) for tree in trees]
    matches = any_of(predicates)
    tags = tuple(str(tag) for tag in rule.tags)
    level = str(rule.level) if rule.level else "medium"
    return CompiledRule(
        id=str(rule.id),
        title=rule.title,
        level=level if level in LEVELS else "medium",
        status=str(rule.status) if rule.status else "experimental",
        tags=tags,
        description=rule.description or "",
        author=rule.author or "",
        references=tuple(rule.references or ()),
        path=path,
        logsource=key,
        matches=matches,
        name=rule.name,
        techniques=tuple(t.split(".", 1)[1].upper() for t in tags if _TECHNIQUE.fullmatch(t)),
        tactics=tuple(
            t.split(".", 1)[1] for t in tags if _TACTIC.fullmatch(t) and not _TECHNIQUE.fullmatch(t)
        ),
        requirements=rule_requirements(trees),
        details=rule_details(rule),
        sigma=rule,
    )


def rule_details(rule: SigmaRule | SigmaCorrelationRule) -> str | None:
    """The rule's `details` template (a custom attribute to Sigma): text, else none."""
    details = rule.custom_attributes.get("details")
    return details.strip() or None if isinstance(details, str) else None


def load_rules(paths: Sequence[Path], options: LoadOptions | None = None) -> RuleSet:
    """Load every rule file under `paths`; problems are collected, never raised."""
    options = options or LoadOptions()
    routes = options.routes if options.routes is not None else tuple(load_routes())
    by_logsource: dict[LogsourceKey, Route] = {route.logsource: route for route in routes}
    pipeline = resolve_pipeline([*options.pipelines, *pipeline_files(paths)])
    ruleset = RuleSet()
    for path in paths:
        if not path.exists():
            ruleset.problems.append(RuleProblem(path, "rule path does not exist"))
    files = list(rule_files(p for p in paths if p.exists()))
    ruleset.files = len(files)
    grouped: dict[Route, list[CompiledRule]] = {}
    seen: dict[str, Path] = {}
    memo = ruleset.memo
    for rule, path in _parse(files, ruleset.problems):
        ident = str(rule.id) if rule.id else None
        if ident is None:
            ruleset.problems.append(RuleProblem(path, "rule has no id", None, rule.title))
            continue
        if ident in seen:
            reason = f"duplicate rule id, first in {seen[ident]}"
            ruleset.problems.append(RuleProblem(path, reason, ident, rule.title))
            continue
        seen[ident] = path
        if isinstance(rule, SigmaCorrelationRule):
            ruleset.correlations.append((rule, path))
            continue
        try:
            with compiling_with(memo):
                compiled = _compile(rule, path, pipeline, options.compile)
        except (CompileError, SigmaError, ValueError, TypeError, KeyError) as exc:
            ruleset.problems.append(RuleProblem(path, f"cannot compile: {exc}", ident, rule.title))
            continue
        disabled = options.filter.reason_disabled(compiled)
        route = by_logsource.get(compiled.logsource)
        if disabled:
            ruleset.disabled.append((compiled, disabled))
        elif route is None:
            ruleset.unrouted.append(compiled)
        else:
            grouped.setdefault(route, []).append(compiled)
    ruleset.routes = [RouteIndex.build(route, rules, memo) for route, rules in grouped.items()]
    ruleset.table = RouteTable([index.route for index in ruleset.routes])
    ruleset.keywords = KeywordScan(ruleset.routes)
    _resolve_correlations(ruleset)
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


def _resolve_correlations(ruleset: RuleSet) -> None:
    """Correlations reference rules by id or name; one whose references are missing is a
    problem (it could never fire), the others are kept for the correlation engine."""
    known = {rule.id for rule in ruleset.rules}
    known |= {rule.name for rule in ruleset.rules if rule.name}
    known |= {str(c.id) for c, _ in ruleset.correlations}
    known |= {c.name for c, _ in ruleset.correlations if c.name}
    kept = []
    for correlation, path in ruleset.correlations:
        missing = [ref.reference for ref in correlation.rules or () if ref.reference not in known]
        if missing:
            reason = "references rules that are not loaded or not enabled: " + ", ".join(missing)
            ruleset.problems.append(
                RuleProblem(path, reason, str(correlation.id), correlation.title)
            )
        else:
            kept.append((correlation, path))
    ruleset.correlations = kept


def options_from_config(config: RulesConfig) -> LoadOptions:
    """Load options from the `rules` configuration section; a bad file raises ValueError naming
    it, which stops start-up rather than running without the operator's settings."""
    routes = tuple(load_routes(Path(config.logsources))) if config.logsources else None
    placeholders: dict[str, list[str]] = {}
    if config.placeholders:
        loaded = yaml.safe_load(Path(config.placeholders).read_text("utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{config.placeholders}: expected a mapping of name -> values")
        placeholders = {
            str(k): [str(v) for v in (vs if isinstance(vs, list) else [vs])]
            for k, vs in loaded.items()
        }
    return LoadOptions(
        pipelines=config.pipelines,
        routes=routes,
        compile=CompileOptions(placeholders=placeholders),
        filter=RuleFilter(
            disabled_ids=frozenset(config.disabled_ids),
            disabled_paths=config.disabled_paths,
            statuses=frozenset(config.statuses),
            min_level=config.min_level,
        ),
    )


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
