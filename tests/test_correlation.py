"""The correlation engine: each Sigma correlation type, window edges, event time, bounded state."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from soc.detect.correlation import CorrelationEngine, CorrelationHit, Match

FAILED = "5638f7c0-ac70-491d-8465-2a65075e0d86"
SUCCESS = "1f4a9f0c-4d3e-4b43-9a52-7f5e8a0e2b11"
SUDO = "8d2b3c4e-5f60-4718-9a0b-1c2d3e4f5a6b"
BASE_RULES = f"""
title: Failed login
id: {FAILED}
name: failed_login
logsource: {{product: linux, service: sshd}}
detection:
  sel: {{event.outcome: failure}}
  condition: sel
---
title: Successful login
id: {SUCCESS}
name: successful_login
logsource: {{product: linux, service: sshd}}
detection:
  sel: {{event.outcome: success}}
  condition: sel
---
title: Sudo to root
id: {SUDO}
name: sudo_root
logsource: {{product: linux, service: sudo}}
detection:
  sel: {{user.target.name: root}}
  condition: sel
"""
RULE_NAMES = {FAILED: "failed_login", SUCCESS: "successful_login", SUDO: "sudo_root"}


def correlation(body: str, *, ident: str = "0e95725d-7320-415d-80f7-004da920fc11") -> str:
    """A correlation rule document with the given `correlation:` body (indented YAML)."""
    return f"title: Correlation {ident[:8]}\nid: {ident}\nname: c_{ident[:8]}\ncorrelation:\n{body}"


def engine(*correlations: str, **options: Any) -> CorrelationEngine:
    """An engine over correlations loaded together with the base rules they reference."""
    collection = SigmaCollection.from_yaml("\n---\n".join([BASE_RULES, *correlations]))
    rules = [rule for rule in collection.rules if isinstance(rule, SigmaCorrelationRule)]
    built = CorrelationEngine(rules, **options)
    assert not built.problems, built.problems
    return built


def match(rule_id: str, ts: float, event_id: str, **fields: Any) -> Match:
    """A match of a base rule; keyword fields use `__` for dots (source__ip -> source.ip)."""
    event: dict[str, Any] = {}
    for name, value in fields.items():
        node = event
        *parents, leaf = name.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return Match(rule_id, RULE_NAMES[rule_id], ts, event, event_id)


def feed(target: CorrelationEngine, matches: list[Match]) -> list[CorrelationHit]:
    return [hit for item in matches for hit in target.process(item)]


EVENT_COUNT_3_IN_10S = correlation(
    """  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10s
  condition: {gte: 3}
"""
)


def failures(times: list[float], ip: str = "10.0.0.1") -> list[Match]:
    """Failed logins from `ip`; events from 10.0.0.1 are named e<time>, others e<time>@<ip>."""
    suffix = "" if ip == "10.0.0.1" else f"@{ip}"
    return [match(FAILED, ts, f"e{ts:g}{suffix}", source__ip=ip) for ts in times]


def test_event_count_fires_when_n_events_lie_within_the_timespan_inclusive() -> None:
    hits = feed(engine(EVENT_COUNT_3_IN_10S), failures([100, 105, 110]))
    assert len(hits) == 1
    (hit,) = hits
    assert hit.group == (("source.ip", "10.0.0.1"),)
    assert (hit.first_seen, hit.last_seen, hit.value) == (100, 110, 3.0)
    assert hit.event_ids == ("e100", "e105", "e110")
    assert hit.events[0] == {"source": {"ip": "10.0.0.1"}}
    assert hit.rule.id == "0e95725d-7320-415d-80f7-004da920fc11"
    assert hit.rule.type == "event_count"


def test_event_count_with_one_event_fewer_does_not_fire() -> None:
    assert feed(engine(EVENT_COUNT_3_IN_10S), failures([100, 105])) == []


def test_event_count_spread_over_timespan_plus_one_second_does_not_fire() -> None:
    assert feed(engine(EVENT_COUNT_3_IN_10S), failures([100, 105, 111])) == []


def test_a_match_fed_again_is_not_counted_twice() -> None:
    """At-least-once delivery: a batch of events evaluated again after a retried publish or a
    crash sends the same matches again; two failed logins seen twice are still two."""
    target = engine(EVENT_COUNT_3_IN_10S)
    first, second = failures([100, 105])
    assert feed(target, [first, second, first, second]) == []
    assert target.stats.duplicates == 2
    assert target.drops()[3] == 2
    (hit,) = feed(target, failures([108]))
    assert hit.event_ids == ("e100", "e105", "e108")
    # The same event matched by another rule is another match.
    assert feed(target, [match(SUDO, 106, "e105", source__ip="10.0.0.1")]) == []
    assert target.stats.duplicates == 2


def test_matches_are_remembered_up_to_a_bound() -> None:
    target = engine(EVENT_COUNT_3_IN_10S, remember_matches=2)
    oldest, newer = failures([100, 101])
    assert feed(target, [oldest, newer, *failures([102], ip="10.9.9.9")]) == []
    # e100 is forgotten (the memory stays bounded) and, fed again, counts.
    assert len(feed(target, [oldest])) == 1
    with pytest.raises(ValueError, match="remember_matches"):
        engine(EVENT_COUNT_3_IN_10S, remember_matches=-1)


def test_event_count_window_slides_past_old_events() -> None:
    hits = feed(engine(EVENT_COUNT_3_IN_10S), failures([100, 105, 111, 114]))
    assert [hit.event_ids for hit in hits] == [("e105", "e111", "e114")]


def test_flood_in_one_window_gives_one_hit_per_batch_of_n() -> None:
    target = engine(EVENT_COUNT_3_IN_10S)
    hits = feed(target, failures([100 + i / 1000 for i in range(1000)]))
    assert len(hits) == 1000 // 3
    assert target.stats.hits == 333
    assert target.stats.entries == 1


def test_out_of_order_events_within_lateness_are_counted() -> None:
    target = engine(EVENT_COUNT_3_IN_10S, allowed_lateness=30)
    hits = feed(target, failures([120, 100, 95, 103]))
    assert [hit.event_ids for hit in hits] == [("e95", "e100", "e103")]
    assert (hits[0].first_seen, hits[0].last_seen) == (95, 103)
    assert target.stats.late == 0


def test_late_events_beyond_lateness_are_counted_and_not_applied() -> None:
    target = engine(EVENT_COUNT_3_IN_10S, allowed_lateness=5)
    hits = feed(target, failures([100, 101, 90, 94]))
    assert hits == []
    assert target.stats.late == 2
    assert target.stats.entries == 2
    assert [hit.event_ids for hit in feed(target, failures([102]))] == [("e100", "e101", "e102")]


def test_group_by_keeps_source_ips_apart() -> None:
    target = engine(EVENT_COUNT_3_IN_10S)
    matches = failures([100, 101], "10.0.0.1") + failures([102, 103], "10.0.0.2")
    assert feed(target, matches) == []
    hits = feed(target, failures([104], "10.0.0.2"))
    assert [hit.group for hit in hits] == [(("source.ip", "10.0.0.2"),)]
    assert target.stats.groups == 2


def test_no_group_by_counts_all_events_in_one_global_group() -> None:
    rule = correlation(
        """  type: event_count
  rules: [failed_login]
  timespan: 10s
  condition: {gte: 3}
"""
    )
    matches = failures([100], "10.0.0.1") + failures([101], "10.0.0.2") + failures([102], "x")
    hits = feed(engine(rule), matches)
    assert [(hit.group, hit.value) for hit in hits] == [((), 3.0)]


def test_missing_group_field_is_counted_and_not_grouped() -> None:
    target = engine(EVENT_COUNT_3_IN_10S)
    hits = feed(target, [match(FAILED, ts, f"e{ts}", user__name="root") for ts in (1, 2, 3)])
    assert hits == []
    assert target.stats.missing_group_field == 3
    assert target.stats.groups == 0


def test_flat_dotted_keys_and_list_values_group_like_nested_fields() -> None:
    target = engine(EVENT_COUNT_3_IN_10S)
    matches = [
        Match(FAILED, "failed_login", 1, {"source.ip": "10.0.0.1"}, "a"),
        Match(FAILED, "failed_login", 2, {"source": {"ip": ["10.0.0.1", "10.0.0.9"]}}, "b"),
        match(FAILED, 3, "c", source__ip="10.0.0.1"),
    ]
    assert [hit.event_ids for hit in feed(target, matches)] == [("a", "b", "c")]


def test_rules_are_referenced_by_id_as_well_as_by_name() -> None:
    rule = correlation(
        f"""  type: event_count
  rules: [{FAILED}]
  group-by: [source.ip]
  timespan: 10s
  condition: {{gte: 2}}
"""
    )
    target = engine(rule)
    assert target.wants(FAILED, None)
    assert target.wants("unknown-id", "failed_login")
    assert not target.wants(SUCCESS, "successful_login")
    matches = [
        Match(FAILED, None, 1, {"source": {"ip": "1.2.3.4"}}, "a"),
        Match(FAILED, "failed_login", 2, {"source": {"ip": "1.2.3.4"}}, "b"),
    ]
    assert [hit.event_ids for hit in feed(target, matches)] == [("a", "b")]


def test_value_count_counts_distinct_values_only() -> None:
    rule = correlation(
        """  type: value_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition: {field: user.name, gte: 3}
"""
    )
    target = engine(rule)
    users = ["root", "root", "admin", "admin", "root"]
    matches = [
        match(FAILED, i, f"e{i}", source__ip="1.1.1.1", user__name=u) for i, u in enumerate(users)
    ]
    assert feed(target, matches) == []
    hits = feed(target, [match(FAILED, 9, "e9", source__ip="1.1.1.1", user__name="oracle")])
    assert [(hit.value, len(hit.event_ids)) for hit in hits] == [(3.0, 6)]


def test_value_count_counts_each_element_of_a_list_and_ignores_missing_values() -> None:
    rule = correlation(
        """  type: value_count
  rules: [failed_login]
  timespan: 1m
  condition: {field: user.name, gte: 3}
"""
    )
    target = engine(rule)
    hits = feed(
        target,
        [
            match(FAILED, 1, "a", user__name=["root", "admin"]),
            match(FAILED, 2, "b", source__ip="1.1.1.1"),
            match(FAILED, 3, "c", user__name="oracle"),
        ],
    )
    assert [(hit.value, hit.event_ids) for hit in hits] == [(3.0, ("a", "c"))]
    assert target.stats.values_ignored == 1


def value_rule(kind: str, condition: str, **ident: str) -> str:
    return correlation(
        f"""  type: {kind}
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 1m
  condition: {condition}
""",
        **ident,
    )


def transfers(values: list[Any]) -> list[Match]:
    return [
        match(FAILED, i, f"e{i}", source__ip="1.1.1.1", source__bytes=v)
        for i, v in enumerate(values)
    ]


@pytest.mark.parametrize(
    ("kind", "condition", "values", "expected"),
    [
        ("value_sum", "{field: source.bytes, gte: 1000}", [400, "500", 100], [1000.0]),
        ("value_sum", "{field: source.bytes, gt: 1000}", [400, 500, 100], []),
        ("value_avg", "{field: source.bytes, gte: 300}", [100, 500], [300.0]),
        ("value_median", "{field: source.bytes, gte: 50}", [10, 60, 70], [60.0]),
        ("value_percentile", "{field: source.bytes, gte: 90, percentile: 90}", [10, 100], [91.0]),
    ],
)
def test_numeric_value_types_fire_on_their_aggregate(
    kind: str, condition: str, values: list[Any], expected: list[float]
) -> None:
    hits = feed(engine(value_rule(kind, condition)), transfers(values))
    assert [hit.value for hit in hits] == expected


def test_non_numeric_values_are_ignored_and_counted() -> None:
    target = engine(value_rule("value_sum", "{field: source.bytes, gte: 10}"))
    hits = feed(target, transfers(["lots", True, 4, [3, "x", 3]]))
    assert [(hit.value, hit.event_ids) for hit in hits] == [(10.0, ("e2", "e3"))]
    assert target.stats.values_ignored == 3


TEMPORAL = """  type: {kind}
  rules: [failed_login, successful_login, sudo_root]
  group-by: [user.name]
  timespan: 1m
"""


def login_then_sudo(order: list[str], times: list[float]) -> list[Match]:
    ids = {"failed": FAILED, "success": SUCCESS, "sudo": SUDO}
    return [
        match(ids[name], ts, f"{name}{ts:g}", user__name="bob")
        for name, ts in zip(order, times, strict=True)
    ]


def test_temporal_fires_when_all_rules_matched_in_any_order() -> None:
    target = engine(correlation(TEMPORAL.format(kind="temporal")))
    hits = feed(target, login_then_sudo(["sudo", "failed", "failed", "success"], [1, 2, 3, 4]))
    assert [(hit.value, hit.event_ids) for hit in hits] == [
        (3.0, ("sudo1", "failed2", "failed3", "success4"))
    ]


def test_temporal_does_not_fire_when_rules_are_further_apart_than_the_timespan() -> None:
    target = engine(correlation(TEMPORAL.format(kind="temporal")))
    assert feed(target, login_then_sudo(["failed", "success", "sudo"], [0, 30, 61])) == []


def test_temporal_ordered_fires_when_rules_match_in_the_listed_order() -> None:
    target = engine(correlation(TEMPORAL.format(kind="temporal_ordered")))
    hits = feed(target, login_then_sudo(["success", "failed", "success", "sudo"], [1, 2, 3, 4]))
    assert [hit.event_ids for hit in hits] == [("success1", "failed2", "success3", "sudo4")]


def test_temporal_ordered_does_not_fire_out_of_order() -> None:
    target = engine(correlation(TEMPORAL.format(kind="temporal_ordered")))
    assert feed(target, login_then_sudo(["sudo", "success", "failed"], [1, 2, 3])) == []


def test_temporal_ordered_uses_event_time_not_arrival_order() -> None:
    target = engine(correlation(TEMPORAL.format(kind="temporal_ordered")))
    hits = feed(target, login_then_sudo(["success", "sudo", "failed"], [2, 3, 1]))
    assert [hit.event_ids for hit in hits] == [("failed1", "success2", "sudo3")]


def test_aliases_group_two_rules_by_their_own_field_names() -> None:
    rule = correlation(
        """  type: temporal
  rules: [failed_login, sudo_root]
  aliases:
    account:
      failed_login: user.name
      sudo_root: user.target.name
  group-by: [account]
  timespan: 1m
"""
    )
    target = engine(rule)
    matches = [
        match(FAILED, 1, "f1", user__name="alice"),
        match(SUDO, 2, "s2", user__name="bob", user__target__name="root"),
        match(SUDO, 3, "s3", user__name="root", user__target__name="alice"),
    ]
    hits = feed(target, matches)
    assert [(hit.group, hit.event_ids) for hit in hits] == [((("account", "alice"),), ("f1", "s3"))]


def test_temporal_boolean_condition_with_not_is_decided_at_window_close() -> None:
    rule = correlation(
        """  type: temporal
  rules: [failed_login, successful_login]
  group-by: [user.name]
  timespan: 1m
  condition: failed_login and not successful_login
"""
    )
    target = engine(rule, allowed_lateness=10)
    assert feed(target, [match(FAILED, 0, "a", user__name="eve")]) == []
    assert feed(target, [match(FAILED, 0, "b", user__name="bob")]) == []
    assert feed(target, [match(SUCCESS, 30, "c", user__name="bob")]) == []
    assert target.advance(70) == []
    hits = target.advance(71)
    assert [(hit.group, hit.event_ids) for hit in hits] == [((("user.name", "eve"),), ("a",))]


LESS_THAN_3 = correlation(
    """  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10s
  condition: {lt: 3}
"""
)


def test_lt_is_decided_by_advance_at_window_close_and_not_before() -> None:
    target = engine(LESS_THAN_3, allowed_lateness=5)
    assert feed(target, failures([100, 104])) == []
    assert target.advance(110) == []
    assert target.advance(115) == []
    hits = target.advance(115.5)
    assert [(hit.value, hit.event_ids) for hit in hits] == [(2.0, ("e100", "e104"))]
    assert target.stats.groups == 0


def test_lt_does_not_fire_when_the_window_reaches_the_threshold() -> None:
    target = engine(LESS_THAN_3, allowed_lateness=0)
    feed(target, failures([100, 101, 110, 112]))
    assert target.advance(111) == []
    hits = target.advance(200)
    assert [hit.event_ids for hit in hits] == [("e112",)]


def test_eq_is_decided_at_window_close() -> None:
    rule = correlation(
        """  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10s
  condition: {eq: 2}
"""
    )
    target = engine(rule, allowed_lateness=0)
    assert feed(target, failures([100, 101])) == []
    assert target.advance(105) == []
    assert [hit.value for hit in target.advance(111)] == [2.0]


def test_generate_reflects_the_referencing_correlations() -> None:
    silent = correlation(
        """  type: event_count
  rules: [failed_login, successful_login]
  timespan: 10s
  condition: {gte: 3}
"""
    )
    loud = correlation(
        """  type: event_count
  rules: [successful_login]
  generate: true
  timespan: 10s
  condition: {gte: 3}
""",
        ident="9a2e6f1d-3b4c-4d5e-8f90-a1b2c3d4e5f6",
    )
    target = engine(silent, loud)
    assert target.generate(FAILED, "failed_login") is False
    assert target.generate(SUCCESS, "successful_login") is True
    assert target.generate(SUDO, "sudo_root") is True


def test_correlation_of_a_correlation_fires_and_returns_both_hits() -> None:
    inner = correlation(
        """  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10s
  condition: {gte: 2}
""",
        ident="aaaaaaaa-0000-4000-8000-000000000001",
    )
    outer = """title: Brute force then success
id: bbbbbbbb-0000-4000-8000-000000000002
correlation:
  type: temporal_ordered
  rules: [c_aaaaaaaa, successful_login]
  group-by: [source.ip]
  timespan: 1m
"""
    target = engine(inner, outer)
    assert target.generate("aaaaaaaa-0000-4000-8000-000000000001", "c_aaaaaaaa") is False
    matches = [
        *failures([100, 101], "6.6.6.6"),
        match(SUCCESS, 130, "ok", source__ip="6.6.6.6"),
        match(SUCCESS, 131, "other", source__ip="7.7.7.7"),
    ]
    hits = feed(target, matches)
    assert [hit.rule.title for hit in hits] == [
        "Correlation aaaaaaaa",
        "Brute force then success",
    ]
    inner_hit, outer_hit = hits
    assert inner_hit.raise_alert is False
    assert outer_hit.raise_alert is True
    assert outer_hit.group == (("source.ip", "6.6.6.6"),)
    assert outer_hit.event_ids == (inner_hit.id, "ok")
    assert (outer_hit.first_seen, outer_hit.last_seen) == (101, 130)
    assert outer_hit.events[0]["source"] == {"ip": "6.6.6.6"}


def test_hits_decided_by_advance_feed_chained_correlations() -> None:
    quiet = correlation(
        """  type: event_count
  rules: [failed_login]
  group-by: [source.ip]
  timespan: 10s
  condition: {lte: 1}
""",
        ident="dddddddd-0000-4000-8000-000000000004",
    )
    outer = """title: Quiet probes from many hosts
id: eeeeeeee-0000-4000-8000-000000000005
correlation:
  type: event_count
  rules: [c_dddddddd]
  timespan: 1m
  condition: {gte: 2}
"""
    target = engine(quiet, outer, allowed_lateness=0)
    feed(target, failures([100], "1.1.1.1") + failures([101], "2.2.2.2"))
    hits = target.advance(112)
    assert [hit.rule.title for hit in hits] == [
        "Correlation dddddddd",
        "Correlation dddddddd",
        "Quiet probes from many hosts",
    ]
    assert hits[2].event_ids == (hits[0].id, hits[1].id)


def test_state_stays_bounded_under_a_flood_of_distinct_groups() -> None:
    target = engine(EVENT_COUNT_3_IN_10S, max_groups=1000)
    for i in range(200_000):
        target.process(match(FAILED, 1000 + i / 1000, f"e{i}", source__ip=f"ip{i}"))
        if i % 10_000 == 0:
            assert target.stats.groups <= 1000
    stats = target.stats
    assert stats.groups == 1000
    assert stats.entries == 1000
    assert stats.groups_evicted == 199_000
    assert stats.matches == 200_000


def test_per_group_entries_are_capped_and_drops_counted() -> None:
    rule = value_rule("value_count", "{field: user.name, gte: 5}")
    target = engine(rule, max_entries_per_group=10)
    feed(target, [match(FAILED, i, f"e{i}", source__ip="1", user__name="root") for i in range(25)])
    assert target.stats.entries == 10
    assert target.stats.entries_dropped == 15


def test_idle_groups_expire_when_the_watermark_passes_timespan_plus_lateness() -> None:
    target = engine(EVENT_COUNT_3_IN_10S, allowed_lateness=5)
    feed(target, failures([100], "a") + failures([108], "b"))
    assert target.advance(115) == []
    assert target.stats.groups == 2
    target.advance(115.5)
    assert (target.stats.groups, target.stats.groups_expired) == (1, 1)
    target.advance(124)
    assert (target.stats.groups, target.stats.entries, target.stats.groups_expired) == (0, 0, 2)


def test_a_watermark_makes_older_matches_late() -> None:
    target = engine(EVENT_COUNT_3_IN_10S, allowed_lateness=5)
    target.advance(200)
    assert feed(target, failures([100, 101, 102])) == []
    assert target.stats.late == 3


def test_hit_ids_are_deterministic_across_replays() -> None:
    matches = failures([100, 101, 102, 103, 104, 105], "1.1.1.1") + failures([100, 101, 102], "2")

    def run() -> list[str]:
        return [hit.id for hit in feed(engine(EVENT_COUNT_3_IN_10S), matches)]

    first = run()
    assert len(first) == 3
    assert len(set(first)) == 3
    assert run() == first


def test_group_key_is_built_from_the_group_by_values() -> None:
    target = engine(EVENT_COUNT_3_IN_10S)
    assert target.group_key(failures([1], "10.9.8.7")[0]) == "source.ip=10.9.8.7"
    assert target.group_key(match(SUDO, 1, "x", source__ip="1.1.1.1")) == ""


def test_group_key_prefers_the_correlation_with_fewest_group_by_fields() -> None:
    wide = correlation(
        """  type: event_count
  rules: [failed_login]
  group-by: [source.ip, user.name]
  timespan: 10s
  condition: {gte: 3}
""",
        ident="cccccccc-0000-4000-8000-000000000003",
    )
    target = engine(wide, EVENT_COUNT_3_IN_10S)
    item = match(FAILED, 1, "x", source__ip="1.1.1.1", user__name="root")
    assert target.group_key(item) == "source.ip=1.1.1.1"


def test_unsupported_rules_are_reported_as_problems() -> None:
    ordered_expression = correlation(
        """  type: temporal_ordered
  rules: [failed_login, successful_login]
  timespan: 1m
  condition: failed_login and successful_login
"""
    )
    percentile = value_rule("value_percentile", "{field: source.bytes, gte: 1}")
    collection = SigmaCollection.from_yaml(
        "\n---\n".join([BASE_RULES, ordered_expression, percentile.replace("0e95", "0e96")])
    )
    rules = [rule for rule in collection.rules if isinstance(rule, SigmaCorrelationRule)]
    target = CorrelationEngine(rules)
    assert target.correlations == ()
    reasons = sorted(problem.reason for problem in target.problems)
    assert reasons == [
        "a boolean condition is only supported for temporal correlations",
        "value_percentile needs a condition percentile between 0 and 100",
    ]


def test_unreferenced_matches_are_counted_and_ignored() -> None:
    target = engine(EVENT_COUNT_3_IN_10S)
    assert target.process(match(SUDO, 1, "x", source__ip="1.1.1.1")) == []
    assert (target.stats.matches, target.stats.unreferenced) == (1, 1)


def _slim(target: CorrelationEngine, full: Match) -> Match:
    """A match as the detector publishes it over Kafka: the fields the correlations read, and
    the whole event as JSON text for the alert."""
    fields = target.fields(full.rule_id, full.rule_name, full.event)
    shown = orjson.dumps(full.event).decode()
    return Match(full.rule_id, full.rule_name, full.timestamp, fields, full.event_id, shown)


ALIASED_TEMPORAL = correlation(
    """  type: temporal
  rules: [failed_login, sudo_root]
  aliases:
    account:
      failed_login: user.name
      sudo_root: user.target.name
  group-by: [account]
  timespan: 1m
""",
    ident="3c1d9e0a-5b2f-4c7d-8e9f-0a1b2c3d4e5f",
)
DISTINCT_USERS = value_rule(
    "value_count", "{field: user.name, gte: 3}", ident="4d2e0f1b-6c3a-4d8e-9fa0-1b2c3d4e5f60"
)
BYTES_SUM = value_rule(
    "value_sum", "{field: source.bytes, gte: 1000}", ident="5e3f1a2c-7d4b-4e9f-a0b1-2c3d4e5f6071"
)


def test_matches_with_only_the_fields_read_give_the_same_hits_showing_whole_events() -> None:
    """What the correlator is handed over Kafka (`CorrelationEngine.fields` and the event as
    text) must raise exactly the hits the whole events raise, and the alerts show the whole
    events; the fields are only those some correlation reads."""
    rules = (EVENT_COUNT_3_IN_10S, ALIASED_TEMPORAL, DISTINCT_USERS, BYTES_SUM)
    noise = {"message": "x" * 200, "log__syslog__appname": "sshd", "host__name": "web01"}
    matches = [
        *(
            match(
                FAILED, i, f"f{i}", source__ip="10.0.0.1", user__name=u, source__bytes=400, **noise
            )
            for i, u in enumerate(["root", "admin", "alice", "oracle"])
        ),
        match(SUDO, 5, "s5", user__name="root", user__target__name="alice", **noise),
        match(FAILED, 6, "f6", source__ip=["10.0.0.2", "10.0.0.3"], user__name="bob", **noise),
    ]
    whole, slim = engine(*rules), engine(*rules)
    expected = feed(whole, matches) + whole.advance(10_000)
    found = feed(slim, [_slim(slim, m) for m in matches]) + slim.advance(10_000)
    assert len(expected) >= 4
    assert found == expected
    assert [dict(event) for hit in found for event in hit.events] == [
        dict(event) for hit in expected for event in hit.events
    ]
    assert set(slim.fields(FAILED, RULE_NAMES[FAILED], matches[0].event)) == {
        "source.ip",
        "user.name",
        "source.bytes",
    }
    assert slim.fields(SUDO, RULE_NAMES[SUDO], matches[4].event) == {"user.target.name": "alice"}
