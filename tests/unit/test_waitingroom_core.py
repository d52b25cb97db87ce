"""The waiting room's logic over in-memory ports and a manual clock (no Redis, PostgreSQL or
Ray): order, rate, headroom, sold out, bots, tokens, lifecycle, a store that lost its data."""

from __future__ import annotations

import pytest

from matchday.domain.errors import Conflict, NotFound
from matchday.waitingroom import bots
from matchday.waitingroom.errors import (
    BotSuspected,
    NotAdmitted,
    TokenExpired,
    TokenMalformed,
    TokenRefused,
    WrongPow,
)
from matchday.waitingroom.models import DropIn
from matchday.waitingroom.service import DropAdmin, WaitingRoom
from matchday.waitingroom.tokens import Tokens, _dec, _enc, solve
from tests.fakes import ManualClock
from tests.unit.waitingroom_fakes import FakeDrops, FakeQueue, FakeStock

SECRET = "s" * 16 + "e" * 16


class Room:
    def __init__(self, available: int = 100) -> None:
        self.clock = ManualClock()
        self.drops = FakeDrops()
        self.queue = FakeQueue()
        self.stock = FakeStock(available)
        self.tokens = Tokens(SECRET)
        # The room's caches run on the manual clock too: a step of 1 s refreshes them.
        self.room = WaitingRoom(
            self.drops, self.queue, self.stock, self.tokens, self.clock, monotonic=self.clock.now
        )
        self.admin = DropAdmin(self.drops, self.queue, self.stock, self.clock)

    async def drop(self, **spec: object) -> str:
        values: dict[str, object] = {"name": "Final jersey", "skus": ["JERSEY-M"], "pow_bits": 0}
        drop = await self.admin.create(DropIn.model_validate({**values, **spec}), "rid-1")
        return drop.drop_id

    async def fans(self, drop_id: str, n: int, prefix: str = "fan") -> dict[str, str]:
        """n fans join one by one, a millisecond apart; their tickets."""
        tickets = {}
        for i in range(n):
            name = f"{prefix}{i:03d}"
            status = await self.room.join(drop_id, name, f"10.0.{i}.1")
            assert status.ticket is not None
            tickets[name] = status.ticket
            self.clock.advance(0.001)
        return tickets

    async def poll(self, drop_id: str, tickets: dict[str, str]) -> dict[str, str]:
        return {c: (await self.room.status(drop_id, t)).state for c, t in tickets.items()}


async def test_fans_are_admitted_in_ticket_order_at_the_configured_rate() -> None:
    r = Room()
    drop_id = await r.drop(rate_per_s=2.0)
    await r.admin.open(drop_id)
    tickets = await r.fans(drop_id, 10)
    first = await r.room.status(drop_id, tickets["fan009"])
    assert (first.state, first.position, first.estimated_wait_s) == ("waiting", 10, 5.0)
    for _ in range(3):
        r.clock.advance(1.0)
        await r.poll(drop_id, tickets)
    # Tolerance 0: exactly the first six, in ticket order, two per second.
    assert r.queue.admissions == [f"fan{i:03d}" for i in range(6)]
    states = await r.poll(drop_id, tickets)
    assert [states[f"fan{i:03d}"] for i in range(10)] == ["admitted"] * 6 + ["waiting"] * 4
    assert (await r.room.status(drop_id, tickets["fan009"])).position == 4


async def test_a_shopper_holds_one_ticket_per_drop_and_joining_again_keeps_its_place() -> None:
    r = Room()
    drop_id = await r.drop()
    tickets = await r.fans(drop_id, 3)
    again = await r.room.join(drop_id, "fan000", "10.9.9.9")
    assert again.position == 1
    assert r.tokens.read_ticket(again.ticket, drop_id, r.clock.now()).place == (
        r.tokens.read_ticket(tickets["fan000"], drop_id, r.clock.now()).place
    )
    assert (await r.admin.stats(drop_id))["queue"]["tickets"] == 3


async def test_fans_without_proof_of_work_wait_behind_those_with_it() -> None:
    r = Room()
    drop_id = await r.drop(pow_bits=8, rate_per_s=1.0)
    await r.admin.open(drop_id)
    script = await r.room.join(drop_id, "script", "10.1.1.1")  # first, but no work
    c = await r.room.challenge(drop_id, "fan")
    fan = await r.room.join(drop_id, "fan", "10.2.2.2", c["challenge"], solve(c["challenge"], 8))
    assert (fan.position, (await r.room.status(drop_id, script.ticket)).position) == (1, 2)
    assert (await r.admin.stats(drop_id))["queue"]["behind"] == 1
    r.clock.advance(1.0)
    await r.room.status(drop_id, script.ticket)
    assert r.queue.admissions == ["fan"]


async def test_a_wrong_or_borrowed_proof_of_work_is_refused() -> None:
    r = Room()
    drop_id = await r.drop(pow_bits=8)
    c = (await r.room.challenge(drop_id, "fan"))["challenge"]
    nonce = solve(c, 8)
    wrong = next(f"{n:x}" for n in range(1000) if _zero_bits(c, f"{n:x}") < 8)
    with pytest.raises(WrongPow):
        await r.room.join(drop_id, "fan", "10.0.0.1", c, wrong)
    with pytest.raises(TokenRefused):  # solved for "fan", sent by another shopper
        await r.room.join(drop_id, "other", "10.0.0.2", c, nonce)
    with pytest.raises(TokenMalformed):
        await r.room.join(drop_id, "fan", "10.0.0.1", "mdc1.nonsense", nonce)
    r.clock.advance(301)
    with pytest.raises(TokenExpired):
        await r.room.join(drop_id, "fan", "10.0.0.1", c, nonce)


def _zero_bits(challenge: str, nonce: str) -> int:
    from matchday.waitingroom.tokens import leading_zero_bits, pow_digest

    return leading_zero_bits(pow_digest(challenge, nonce))


async def test_many_identities_from_one_address_go_behind_then_are_turned_away() -> None:
    r = Room()
    drop_id = await r.drop(address_limit=2)
    places = []
    for i in range(20):
        status = await r.room.join(drop_id, f"farm{i:02d}", "203.0.113.7")
        r.clock.advance(0.001)
        places.append(r.tokens.read_ticket(status.ticket, drop_id, r.clock.now()).place)
    assert [bots.is_behind(p) for p in places] == [False] * 2 + [True] * 18
    with pytest.raises(BotSuspected):
        await r.room.join(drop_id, "farm20", "203.0.113.7")
    # A fan from elsewhere who came later still goes before the pushed-back ones.
    fan = await r.room.join(drop_id, "fan", "198.51.100.1")
    assert fan.position == 3
    stats = (await r.admin.stats(drop_id))["queue"]
    assert (stats["refused"], stats["behind"], stats["tickets"]) == (1, 18, 21)


async def test_tickets_cannot_be_forged_moved_to_another_shopper_or_used_after_expiry() -> None:
    r = Room()
    drop_id = await r.drop()
    other_drop = (await r.admin.create(DropIn(name="b", skus=["CAP"], pow_bits=0), "rid-2")).drop_id
    ticket = (await r.fans(drop_id, 1))["fan000"]
    head, place, expires, mac = ticket.rsplit(".", 3)
    better = _enc(_dec(place) - 10**9)
    earlier = f"{head}.{better}.{expires}.{mac}"  # a better place, same MAC
    for forged in (earlier, ticket[:-1] + ("a" if ticket[-1] != "a" else "b")):
        with pytest.raises(TokenRefused):
            await r.room.status(drop_id, forged)
    with pytest.raises(TokenRefused):
        await r.room.status(drop_id, ticket, customer="someone-else")
    with pytest.raises(TokenRefused):
        await r.room.status(other_drop, ticket)
    padded = f"{head}.g{place}.{expires}.{mac}"  # the same number, written another way
    for malformed in (None, "", "mdt1.x", ticket + ".1", ticket.replace("mdt1", "mdp1"), padded):
        with pytest.raises(TokenMalformed):
            await r.room.status(drop_id, malformed)
    r.clock.advance(24 * 3600 + 1)
    with pytest.raises(TokenExpired):
        await r.room.status(drop_id, ticket)


async def test_a_pass_is_for_admitted_fans_only_bound_to_them_and_short_lived() -> None:
    r = Room()
    drop_id = await r.drop(rate_per_s=1.0, pass_ttl_s=60)
    await r.admin.open(drop_id)
    tickets = await r.fans(drop_id, 2)
    with pytest.raises(NotAdmitted):
        await r.room.claim(drop_id, tickets["fan000"], "fan000")
    r.clock.advance(1.0)
    granted = await r.room.claim(drop_id, tickets["fan000"], "fan000")
    now = r.clock.now()
    assert granted["expires_at"] == int(now + 60)
    assert r.tokens.check_pass(granted["pass"], drop_id, "fan000", now) == int(now + 60)
    with pytest.raises(TokenRefused):  # another shopper cannot claim or use it
        await r.room.claim(drop_id, tickets["fan000"], "fan001")
    with pytest.raises(TokenRefused):
        r.tokens.check_pass(granted["pass"], drop_id, "fan001", now)
    with pytest.raises(TokenRefused):
        r.tokens.check_pass(granted["pass"].replace(".fan000.", ".fan001."), drop_id, "fan001", now)
    r.clock.advance(61)
    with pytest.raises(TokenExpired):
        r.tokens.check_pass(granted["pass"], drop_id, "fan000", r.clock.now())
    with pytest.raises(TokenExpired):  # nor can the admission be claimed again once over
        await r.room.claim(drop_id, tickets["fan000"], "fan000")


async def test_the_queue_is_told_sold_out_at_once_and_reopens_when_holds_return() -> None:
    r = Room(available=0)
    r.stock.held = 3
    drop_id = await r.drop(rate_per_s=100.0)
    await r.admin.open(drop_id)
    tickets = await r.fans(drop_id, 5)
    r.clock.advance(1.0)
    status = await r.room.status(drop_id, tickets["fan004"])
    assert (status.state, status.held, status.position) == ("sold_out", 3, 5)
    assert r.queue.admissions == []
    r.stock.available, r.stock.held = 2, 1  # two holds expired
    r.clock.advance(1.0)
    states = await r.poll(drop_id, tickets)
    assert r.queue.admissions == ["fan000", "fan001"]  # in order, no more than the units
    assert states["fan002"] == "waiting"


async def test_admission_stops_at_the_headroom_and_resumes_when_an_unused_pass_expires() -> None:
    r = Room(available=2)
    drop_id = await r.drop(rate_per_s=100.0, pass_ttl_s=60)
    await r.admin.open(drop_id)
    tickets = await r.fans(drop_id, 4)
    r.clock.advance(1.0)
    await r.poll(drop_id, tickets)
    assert r.queue.admissions == ["fan000", "fan001"]
    await r.room.spent(drop_id, "fan000")  # fan000 takes a unit: 1 left, fan001 may buy it
    r.stock.available, r.stock.held = 1, 1
    r.clock.advance(1.0)
    await r.poll(drop_id, tickets)
    assert r.queue.admissions == ["fan000", "fan001"]
    r.clock.advance(60)  # fan001 never came: its pass lapsed, the unit is someone else's
    await r.poll(drop_id, tickets)
    assert r.queue.admissions == ["fan000", "fan001", "fan002"]


async def test_a_store_that_lost_everything_rebuilds_the_order_from_signed_tickets() -> None:
    r = Room()
    drop_id = await r.drop(rate_per_s=1.0)
    await r.admin.open(drop_id)
    tickets = await r.fans(drop_id, 4)
    r.clock.advance(1.0)
    pass_a = (await r.room.claim(drop_id, tickets["fan000"], "fan000"))["pass"]
    r.queue.lose_everything()
    late = await r.room.join(drop_id, "late", "10.7.7.7")  # a new fan, after the restart
    # fan003 then fan001 come back: each is re-filed at its own place, ahead of "late".
    assert (await r.room.status(drop_id, tickets["fan003"])).position == 1
    assert (await r.room.status(drop_id, tickets["fan001"])).position == 1
    assert (await r.room.status(drop_id, late.ticket)).position == 3
    r.clock.advance(1.0)
    await r.room.status(drop_id, late.ticket)
    assert r.queue.admissions[-1] == "fan001"
    # The admitted fan's pass needs no store at all.
    r.tokens.check_pass(pass_a, drop_id, "fan000", r.clock.now())


async def test_the_drop_lifecycle_and_its_refusals() -> None:
    r = Room()
    drop_id = await r.drop(rate_per_s=5.0)
    assert (await r.admin.create(DropIn(name="x", skus=["JERSEY-M"]), "rid-1")).drop_id == drop_id
    with pytest.raises(Conflict):  # a SKU is in one live drop at most
        await r.admin.create(DropIn(name="y", skus=["JERSEY-M", "CAP"]), "rid-9")
    tickets = await r.fans(drop_id, 2)
    assert (await r.room.status(drop_id, tickets["fan000"])).state == "scheduled"
    with pytest.raises(Conflict):
        await r.admin.resume(drop_id)
    await r.admin.open(drop_id)
    assert (await r.admin.open(drop_id)).state == "open"  # idempotent
    await r.admin.pause(drop_id)
    r.clock.advance(5.0)
    assert (await r.room.status(drop_id, tickets["fan000"])).state == "paused"
    assert r.queue.admissions == []
    await r.admin.resume(drop_id)
    await r.admin.set_rate(drop_id, 1.0)
    r.clock.advance(1.0)
    assert (await r.room.status(drop_id, tickets["fan000"])).state == "admitted"
    assert r.queue.admissions == ["fan000"]  # the rate, not the pause's backlog
    await r.admin.close(drop_id)
    assert (await r.admin.close(drop_id)).state == "closed"
    r.clock.advance(1.0)  # every process sees a change within its drop cache's second
    assert (await r.room.status(drop_id, tickets["fan001"])).state == "closed"
    with pytest.raises(Conflict):
        await r.room.join(drop_id, "new", "10.0.0.9")
    with pytest.raises(Conflict):
        await r.admin.set_rate(drop_id, 3.0)
    with pytest.raises(Conflict):
        await r.admin.open(drop_id)
    with pytest.raises(NotFound):
        await r.admin.stats("d_aaaaaaaaaaaaaaaa")
    # Closed, its SKUs are free for another drop.
    await r.admin.create(DropIn(name="z", skus=["JERSEY-M"]), "rid-3")


async def test_a_scheduled_drop_opens_by_itself_at_its_opening_time() -> None:
    r = Room()
    drop_id = await r.drop(opens_at=r.clock.now() + 60, rate_per_s=10.0)
    tickets = await r.fans(drop_id, 3)
    r.clock.advance(30)
    assert (await r.room.status(drop_id, tickets["fan000"])).state == "scheduled"
    r.clock.advance(31)
    await r.room.status(drop_id, tickets["fan000"])
    r.clock.advance(1)
    assert (await r.poll(drop_id, tickets)) == dict.fromkeys(tickets, "admitted")


async def test_no_token_carries_a_run_of_digits_the_card_number_guard_would_refuse() -> None:
    from matchday.domain.cards import contains_pan

    r = Room()
    drop_id = await r.drop(rate_per_s=1000.0)
    await r.admin.open(drop_id)
    for i in range(200):
        r.clock.advance(123.456789)
        status = await r.room.join(drop_id, f"u_{i}", f"10.1.{i}.1")
        assert status.ticket is not None
        tokens = [
            status.ticket,
            r.tokens.pass_(drop_id, f"u_{i}", r.clock.now() + i),
            r.tokens.challenge(drop_id, f"u_{i}", 16, r.clock.now()),
        ]
        assert not any(any(ch.isdigit() for ch in t.split(".", 3)[3]) for t in tokens[:2])
        assert not any(contains_pan(t) for t in tokens)


async def test_the_room_records_tickets_admissions_waits_queue_length_and_refusals() -> None:
    from matchday.metrics import (
        WR_ADMITTED,
        WR_GATE_REFUSED,
        WR_QUEUE,
        WR_TICKETS,
        WR_WAIT,
        MemoryMetrics,
    )
    from matchday.waitingroom.errors import PassRequired
    from matchday.waitingroom.gate import PassGate

    r = Room()
    r.room.metrics = metrics = MemoryMetrics()
    drop_id = await r.drop(rate_per_s=1.0, address_limit=1)
    await r.admin.open(drop_id)
    tickets = await r.fans(drop_id, 3)
    await r.room.join(drop_id, "twin", "10.0.0.1")  # a second shopper from fan000's address
    r.clock.advance(10.0)
    await r.room.status(drop_id, tickets["fan002"])
    tags = (("drop", drop_id),)
    assert metrics.count(WR_TICKETS, verdict="genuine") == 3
    assert metrics.count(WR_TICKETS, verdict="behind") == 1
    assert metrics.count(WR_ADMITTED) == 1
    assert metrics.gauges[(WR_QUEUE, tags)] == 3
    assert metrics.observations[(WR_WAIT, tags)] == [pytest.approx(10.003)]
    gate = PassGate(r.drops.live_skus, r.tokens, r.clock, metrics=metrics, monotonic=r.clock.now)
    with pytest.raises(PassRequired):
        await gate.require("JERSEY-M", None, "fan000")
    assert metrics.count(WR_GATE_REFUSED, code="pass_required") == 1
