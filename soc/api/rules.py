"""Rules in the console: what is loaded and enabled, hit counts, switching a rule on or off,
testing a rule against a pasted event, and hunting with a pasted rule over stored events.

The switches are kept in the accounts database and applied as the engine loads its rules (by id,
on top of the configuration's own `rules.disabled_ids`); in `soc run` a switch reloads the engine
at once, a separate `soc engine` on the same data directory picks it up within its poll interval.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from soc.accounts import Accounts
from soc.api.auth import Admin, Analyst, CurrentPrincipal
from soc.api.session import client_ip
from soc.config import Config
from soc.detect.alerts import build_alert
from soc.detect.rules import (
    CompiledRule,
    LoadOptions,
    RuleFilter,
    RuleSet,
    load_rules,
    options_from_config,
    pipeline_files,
)
from soc.detect.ruletests import event_from_entry
from soc.incidents.audit import record
from soc.normalize import NormalizeOptions
from soc.store.base import Query as StoreQuery
from soc.store.base import QueryError, Store

router = APIRouter(prefix="/api/v1", tags=["rules"])

MAX_RULE_BYTES = 256 * 1024
#: How many stored events one hunt reads at most (newest first).
HUNT_MAX_EVENTS = 200_000
_HUNT_PAGE = 2000


def effective_options(config: Config, overrides: Mapping[str, bool]) -> LoadOptions:
    """The configuration's load options with the console's switches applied by rule id."""
    options = options_from_config(config.rules)
    disabled = set(options.filter.disabled_ids)
    disabled |= {rule_id for rule_id, enabled in overrides.items() if not enabled}
    disabled -= {rule_id for rule_id, enabled in overrides.items() if enabled}
    return replace(options, filter=replace(options.filter, disabled_ids=frozenset(disabled)))


class RuleCatalog:
    """The rules as the API shows them. `current` gives the engine's rule set when the engine
    runs in this process; otherwise the catalog loads the rules itself, once, off the loop."""

    def __init__(
        self,
        config: Config,
        accounts: Accounts | None,
        *,
        current: Callable[[], RuleSet | None] | None = None,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.accounts = accounts
        self._current = current
        self._on_change = on_change
        self._loaded: RuleSet | None = None
        self._lock = asyncio.Lock()

    def overrides(self) -> dict[str, bool]:
        return self.accounts.rule_overrides() if self.accounts is not None else {}

    async def ruleset(self) -> RuleSet:
        found = self._current() if self._current is not None else None
        if found is not None:
            return found
        async with self._lock:
            if self._loaded is None:
                options = effective_options(self.config, self.overrides())
                paths = [Path(p) for p in self.config.rules.paths]
                self._loaded = await asyncio.to_thread(load_rules, paths, options)
            return self._loaded

    async def summaries(self) -> list[dict[str, Any]]:
        ruleset = await self.ruleset()
        rows: list[dict[str, Any]] = []
        for rule in ruleset.rules:
            rows.append(_summary(rule, True, None))
        for rule in ruleset.unrouted:
            rows.append(_summary(rule, False, "no log-source route"))
        for rule, reason in ruleset.disabled:
            rows.append(_summary(rule, False, reason))
        return rows

    async def set_enabled(self, rule_id: str, enabled: bool, by: str) -> None:
        if self.accounts is None:
            raise HTTPException(status.HTTP_501_NOT_IMPLEMENTED, "rule switches need accounts")
        await asyncio.to_thread(self.accounts.set_rule_enabled, rule_id, enabled, by)
        async with self._lock:
            self._loaded = None
        if self._on_change is not None:
            await self._on_change()

    def options_for_text(self) -> LoadOptions:
        """Options for a pasted rule: the configured and shipped pipelines, no filters."""
        options = options_from_config(self.config.rules)
        shipped = pipeline_files(Path(p) for p in self.config.rules.paths)
        return replace(
            options, pipelines=(*options.pipelines, *shipped), filter=RuleFilter(statuses=None)
        )


def _summary(rule: CompiledRule, enabled: bool, reason: str | None) -> dict[str, Any]:
    return {
        "id": rule.id,
        "title": rule.title,
        "level": rule.level,
        "status": rule.status,
        "path": str(rule.path),
        "enabled": enabled,
        "disabled_reason": reason,
        "techniques": list(rule.techniques),
        "tactics": list(rule.tactics),
        # The key holds only the parts the rule names, as sorted (name, value) pairs.
        "logsource": dict(rule.logsource),
        "description": rule.description,
    }


def _catalog(request: Request) -> RuleCatalog:
    catalog: RuleCatalog = request.app.state.rules
    return catalog


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


CatalogDep = Annotated[RuleCatalog, Depends(_catalog)]
StoreDep = Annotated[Store, Depends(_store)]


@router.get("/rules", summary="Loaded rules: enabled or not and why, hits in the period")
async def list_rules(
    principal: CurrentPrincipal,
    catalog: CatalogDep,
    store: StoreDep,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[dict[str, Any]]:
    rows = await catalog.summaries()
    try:
        hits = await store.count_by(
            "alerts",
            "rule.id",
            StoreQuery(scope=principal.scope, start=start, end=end),
            size=max(len(rows), 1),
        )
    except QueryError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    counts = dict(hits)
    return [{**row, "hits": counts.get(row["id"], 0)} for row in rows]


async def _switch(
    rule_id: str, enabled: bool, request: Request, principal: Admin, catalog: RuleCatalog
) -> dict[str, Any]:
    if principal.scope.agencies is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "rules apply to every agency: province-wide admins only"
        )
    known = {row["id"] for row in await catalog.summaries()}
    if rule_id not in known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r} is loaded")
    await catalog.set_enabled(rule_id, enabled, principal.name)
    await record(
        request.app.state.store,
        actor=principal.name,
        action="rule.enable" if enabled else "rule.disable",
        object_type="rule",
        object_id=rule_id,
        source_ip=client_ip(request),
    )
    return {"id": rule_id, "enabled": enabled}


@router.post("/rules/{rule_id}/enable", summary="Switch a rule on (province-wide admins)")
async def enable_rule(
    rule_id: str, request: Request, principal: Admin, catalog: CatalogDep
) -> dict[str, Any]:
    return await _switch(rule_id, True, request, principal, catalog)


@router.post("/rules/{rule_id}/disable", summary="Switch a rule off (province-wide admins)")
async def disable_rule(
    rule_id: str, request: Request, principal: Admin, catalog: CatalogDep
) -> dict[str, Any]:
    return await _switch(rule_id, False, request, principal, catalog)


class RuleTestIn(BaseModel):
    rule: str = Field(min_length=1, max_length=MAX_RULE_BYTES, description="Sigma rule (YAML)")
    event: dict[str, Any] | str = Field(
        description="an ECS event, or a raw syslog line as the collector would receive it"
    )


class HuntIn(BaseModel):
    rule: str = Field(min_length=1, max_length=MAX_RULE_BYTES, description="Sigma rule (YAML)")
    start: datetime | None = None
    end: datetime | None = None
    limit: int = Field(default=100, ge=1, le=1000)


async def _compile(catalog: RuleCatalog, text: str) -> RuleSet:
    """A pasted rule compiled as the engine would (same pipelines and routes); 400 naming
    what is wrong otherwise."""

    def load() -> RuleSet:
        with tempfile.TemporaryDirectory(prefix="soc-rule-") as folder:
            path = Path(folder) / "pasted.yml"
            path.write_text(text, "utf-8")
            return load_rules([path], catalog.options_for_text())

    ruleset = await asyncio.to_thread(load)
    if ruleset.correlations:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "a correlation rule cannot be tested on single events"
        )
    if ruleset.problems:
        reasons = "; ".join(problem.reason for problem in ruleset.problems)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"rule not usable: {reasons}")
    if not ruleset.rules:
        if ruleset.unrouted:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "the rule's logsource has no route on this platform (no events would reach it)",
            )
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "no rule found in the text")
    return ruleset


@router.post("/rules/test", summary="Does this rule match this event?")
async def test_rule(body: RuleTestIn, principal: Analyst, catalog: CatalogDep) -> dict[str, Any]:
    ruleset = await _compile(catalog, body.rule)
    try:
        event = event_from_entry(body.event, NormalizeOptions())
    except ValueError as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
    hits = list(ruleset.match(dict(event)))
    return {
        "matched": bool(hits),
        "rule": {"id": ruleset.rules[0].id, "title": ruleset.rules[0].title},
        "event": event,
        "alert": build_alert(hits[0], event) if hits else None,
    }


@router.post("/hunt", summary="Run a pasted rule over stored events in a time range")
async def hunt(
    body: HuntIn,
    principal: Analyst,
    catalog: CatalogDep,
    store: StoreDep,
    max_events: Annotated[int, Query(ge=1, le=HUNT_MAX_EVENTS)] = 50_000,
) -> dict[str, Any]:
    ruleset = await _compile(catalog, body.rule)
    found: list[dict[str, Any]] = []
    scanned = 0
    offset = 0
    while scanned < max_events and len(found) < body.limit:
        try:
            page = await store.search(
                "events",
                StoreQuery(
                    scope=principal.scope,
                    start=body.start,
                    end=body.end,
                    offset=offset,
                    limit=min(_HUNT_PAGE, max_events - scanned),
                ),
            )
        except QueryError as exc:
            if offset == 0:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
            break  # deeper than the store pages: report what was scanned
        if not page.items:
            break
        for event in page.items:
            if any(True for _ in ruleset.match(event)):
                found.append(event)
                if len(found) >= body.limit:
                    break
        scanned += len(page.items)
        offset += len(page.items)
        await asyncio.sleep(0)
    return {
        "rule": {"id": ruleset.rules[0].id, "title": ruleset.rules[0].title},
        "scanned": scanned,
        "complete": scanned < max_events and len(found) < body.limit,
        "items": found,
        "total": len(found),
    }
