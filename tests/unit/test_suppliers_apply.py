"""Applying mapped supplier lines: what needs the engine, with which request id, and what
each line came to. The engine here is a small in-memory one with the engine's counter rules
(set_on_hand: on_hand = sold + units; a repeated request id gets its first answer)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from matchday.domain.errors import InvariantViolation, Unavailable
from matchday.suppliers.apply import Applier, request_id
from matchday.suppliers.model import DELTA, LEVEL, Counters, FeedLine, Mapping, Plan

SCOPE = ("acme", "push", "m-1")


@dataclass(frozen=True)
class Answer:
    on_hand: int
    reserved: int
    sold: int
    revoked: tuple[str, ...] = ()


@dataclass
class Engine:
    stock: dict[str, list[int]] = field(default_factory=dict)  # sku -> [on_hand, reserved, sold]
    answers: dict[str, Answer] = field(default_factory=dict)
    calls: list[tuple[str, str, str, int]] = field(default_factory=list)
    before_call: Callable[[str], None] | None = None
    fail: dict[str, Exception] = field(default_factory=dict)

    async def counters(self, skus: Collection[str]) -> dict[str, Counters]:
        return {s: Counters(*self.stock[s]) for s in skus if s in self.stock}

    def _apply(self, kind: str, rid: str, sku: str, n: int) -> Answer:
        self.calls.append((kind, rid, sku, n))
        if rid in self.answers:
            return self.answers[rid]
        if sku in self.fail:
            raise self.fail[sku]
        if self.before_call:
            self.before_call(sku)
        row = self.stock[sku]
        if kind == "set":
            row[0] = row[2] + n
        elif kind == "adjust":
            row[0] = row[2] + max(0, row[0] - row[2] + n)
        else:
            row[0] += n
        self.answers[rid] = Answer(*row)
        return self.answers[rid]

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> Answer:
        return self._apply("set", request_id, sku, units)

    async def restock(self, request_id: str, sku: str, qty: int) -> Answer:
        return self._apply("restock", request_id, sku, qty)

    async def adjust(self, request_id: str, sku: str, delta: int) -> Answer:
        return self._apply("adjust", request_id, sku, delta)


def maps(*pairs: tuple[str, str], as_of: float | None = None) -> dict[str, Mapping]:
    return {s: Mapping(s, sku, as_of) for s, sku in pairs}


async def run(engine: Engine, lines: list[FeedLine], mapping: dict[str, Mapping], **kw: object):  # type: ignore[no-untyped-def]
    applier = Applier(engine, engine)
    prepared = await applier.prepare(SCOPE, lines, mapping, 100.0, kw.get("plans", {}))  # type: ignore[arg-type]
    results, failure = await applier.execute(prepared.todo)
    return applier, prepared, {r.line: r for r in [*prepared.done, *results]}, failure


async def test_a_level_is_set_through_the_engine_and_an_equal_one_costs_no_call() -> None:
    engine = Engine({"A": [10, 2, 5], "B": [9, 0, 4]})  # unsold: A 5, B 5
    lines = [FeedLine(1, "a", LEVEL, 8), FeedLine(2, "b", LEVEL, 5)]
    applier, _, out, failure = await run(engine, lines, maps(("a", "A"), ("b", "B")))
    assert failure is None and applier.sent == 1
    assert engine.calls == [("set", request_id(*SCOPE, 1), "A", 8)]
    assert out[1].status == "applied" and (out[1].before, out[1].after, out[1].drift) == (5, 8, -3)
    assert out[2].status == "unchanged" and out[2].drift == 0
    assert engine.stock["A"] == [13, 2, 5]


async def test_request_ids_differ_by_supplier_source_message_and_line() -> None:
    ids = {
        request_id("acme", "push", "m-1", 1),
        request_id("acme", "push", "m-1", 2),
        request_id("acme", "push", "m-2", 1),
        request_id("acme", "sync", "m-1", 1),
        request_id("other", "push", "m-1", 1),
    }
    assert len(ids) == 5 and all(len(i) == 28 and i.startswith("sup:") for i in ids)


async def test_a_retried_line_is_answered_by_the_engine_and_applied_once() -> None:
    engine = Engine({"A": [0, 0, 0]})
    lines = [FeedLine(1, "a", DELTA, 4)]
    await run(engine, lines, maps(("a", "A")))
    await run(engine, lines, maps(("a", "A")))
    assert engine.stock["A"] == [4, 0, 0]
    assert [c[0] for c in engine.calls] == ["restock", "restock"]  # same id both times


async def test_a_decrease_is_one_engine_adjustment_with_nothing_planned() -> None:
    engine = Engine({"A": [20, 6, 4]})  # unsold 16; the supplier says 5 fewer
    applier, prepared, out, _ = await run(engine, [FeedLine(1, "a", DELTA, -5)], maps(("a", "A")))
    assert prepared.plans == {} and applier.sent == 1
    assert engine.calls == [("adjust", request_id(*SCOPE, 1), "A", -5)]
    assert engine.stock["A"] == [15, 6, 4] and out[1].after == 11


async def test_a_plan_stored_by_an_older_release_is_ignored() -> None:
    engine = Engine({"A": [20, 0, 0]})
    line = [FeedLine(1, "a", DELTA, -5)]
    await run(engine, line, maps(("a", "A")), plans={1: Plan(3, 0)})
    assert engine.stock["A"] == [15, 0, 0]


async def test_a_decrease_below_zero_stops_at_zero() -> None:
    engine = Engine({"A": [3, 0, 1]})
    _, _, out, _ = await run(engine, [FeedLine(1, "a", DELTA, -9)], maps(("a", "A")))
    assert out[1].after == 0


async def test_unmapped_stale_and_unknown_lines_are_reported_without_an_engine_call() -> None:
    engine = Engine({"A": [1, 0, 0]})
    lines = [
        FeedLine(1, "nobody", LEVEL, 1),
        FeedLine(2, "old", LEVEL, 1),
        FeedLine(3, "gone", LEVEL, 1),
    ]
    mapping = {**maps(("old", "A"), as_of=200.0), **maps(("gone", "GONE"))}
    _, _, out, _ = await run(engine, lines, mapping)
    assert [(out[n].status, out[n].reason) for n in (1, 2, 3)] == [
        ("rejected", "unmapped"),
        ("rejected", "stale"),
        ("rejected", "unknown_sku"),
    ]
    assert engine.calls == []


async def test_engine_refusals_are_line_results_and_an_outage_leaves_lines_unanswered() -> None:
    engine = Engine(
        {"A": [1, 0, 0], "B": [1, 0, 0], "C": [1, 0, 0]},
        fail={"A": InvariantViolation("A", "too much"), "B": Unavailable("shard down")},
    )
    lines = [FeedLine(1, "a", DELTA, 5), FeedLine(2, "b", DELTA, 5), FeedLine(3, "c", DELTA, 5)]
    _, _, out, failure = await run(engine, lines, maps(("a", "A"), ("b", "B"), ("c", "C")))
    assert out[1].status == "rejected" and out[1].reason == "invariant_violation"
    assert 2 not in out and isinstance(failure, Unavailable)
    assert out[3].status == "applied"
    assert out[1].record()["message"] == "A: too much"
