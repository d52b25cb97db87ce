"""Live polls over HTTP, in-process on real PostgreSQL and Redis: admins create and close
polls through the admin app; shoppers list, vote once, and follow results live."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from matchday import bootstrap
from matchday.polls.drain import VoteDrain
from matchday.polls.service import PollService
from matchday.settings import Settings
from matchday.web import polls_api
from tests.conftest import uid
from tests.integration.test_admin_api import Admin, open_admin

pytestmark = pytest.mark.integration

# What a poll's answers carry, to shoppers and admins alike, and a vote's.
POLL_KEYS = {
    "poll_id",
    "question",
    "placement",
    "status",
    "closes_at",
    "options",
    "has_offer",
    "results",
    "total",
    "my_vote",
    "offer",
}
VOTE_KEYS = {"poll_id", "option_id", "results", "total", "offer"}


@dataclass
class Polls:
    admin: Admin
    http: httpx.AsyncClient
    service: PollService
    drain: VoteDrain
    session: dict[str, str]

    async def create(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "question": "Which kit for the final?",
            "placement": f"product:{uid('kit').lower()}",
            "options": [{"label": "Home"}, {"label": "Away"}, {"label": "Third"}],
            **overrides,
        }
        r = await self.admin.http.post("/polls", json=body, headers=self.session)
        assert r.status_code == 201, r.text
        return dict(r.json())

    async def shopper(self) -> dict[str, str]:
        return await self.admin.stack.session()

    async def vote(self, poll_id: str, option: str, auth: dict[str, str], **kw: Any) -> Any:
        return await self.http.post(f"/{poll_id}/votes", json={"option_id": option}, headers={
            **auth, **kw.pop("headers", {})
        }, **kw)  # fmt: skip

    async def vote_retrying(self, poll_id: str, option: str, auth: dict[str, str]) -> Any:
        """As a client does: a retryable 503 (e.g. the replica's Redis connections are all
        busy) is sent again after a moment."""
        while True:
            r = await self.vote(poll_id, option, auth)
            if r.status_code != 503:
                return r
            assert r.json()["retryable"] is True
            await asyncio.sleep(0.05)

    async def drained(self) -> None:
        """Until the votes stream is empty (what the Serve replica's drain task does)."""
        while await self.drain.drain_once(block_ms=50):
            pass


@contextlib.asynccontextmanager
async def open_polls(settings: Settings, **overrides: Any) -> AsyncIterator[Polls]:
    async with open_admin(settings, **overrides) as admin:
        ctx = admin.stack.ctx
        app = polls_api.build(ctx)
        service = ctx.polls
        drain = bootstrap.vote_drain(ctx)
        transport = httpx.ASGITransport(app=app, root_path="/api/polls")
        async with httpx.AsyncClient(
            transport=transport, base_url="http://shop.test/api/polls"
        ) as http:
            try:
                yield Polls(admin, http, service, drain, await admin.login())
            finally:
                await service.aclose()  # live-results loops of streams still open


@pytest.fixture(scope="module")  # one stack: tests/integration/shop_stack.py
async def polls(settings: Settings) -> AsyncIterator[Polls]:
    async with open_polls(settings) as p:
        yield p


async def test_admin_creates_shoppers_list_vote_once_and_admin_closes(polls: Polls) -> None:
    poll = await polls.create()
    pid, placement = poll["poll_id"], poll["placement"]
    assert poll["status"] == "open" and poll["total"] == 0 and not poll["has_offer"]
    assert [o["option_id"] for o in poll["options"]] == ["o1", "o2", "o3"]
    assert set(poll) == POLL_KEYS and set(poll["options"][0]) == {"option_id", "label", "sku"}

    r = await polls.http.get("/", params={"placement": placement})
    assert r.status_code == 200 and [p["poll_id"] for p in r.json()["polls"]] == [pid]

    fan = await polls.shopper()
    r = await polls.vote(pid, "o2", fan)
    assert r.status_code == 201, r.text
    assert r.json()["results"] == {"o1": 0, "o2": 1, "o3": 0} and r.json()["offer"] is None
    assert set(r.json()) == VOTE_KEYS
    again = await polls.vote(pid, "o2", fan)
    assert again.status_code == 200 and again.json()["total"] == 1  # no double count
    assert set(again.json()) == VOTE_KEYS
    other = await polls.vote(pid, "o1", fan)
    assert other.status_code == 409 and other.json()["code"] == "already_voted"

    mine = (await polls.http.get(f"/{pid}", headers=fan)).json()
    assert mine["my_vote"] == "o2" and mine["total"] == 1
    anon = (await polls.http.get(f"/{pid}")).json()
    assert anon["my_vote"] is None
    assert set(mine) == set(anon) == POLL_KEYS

    r = await polls.admin.http.post(f"/polls/{pid}/close", headers=polls.session)
    assert r.status_code == 200 and r.json()["status"] == "closed", r.text
    assert set(r.json()) == POLL_KEYS
    late = await polls.vote(pid, "o1", await polls.shopper())
    assert late.status_code == 409 and late.json()["code"] == "poll_closed"
    assert (await polls.http.get("/", params={"placement": placement})).json()["polls"] == []
    listed = (await polls.admin.http.get("/polls", headers=polls.session)).json()["polls"]
    assert any(p["poll_id"] == pid and p["status"] == "closed" for p in listed)
    assert all(set(p) == POLL_KEYS for p in listed)
    audited = {e.action for e in await polls.admin.repo.recent_audit(200, None)
               if e.target in (pid, placement)}  # fmt: skip
    assert {"poll.create", "poll.close"} <= audited


async def test_bad_input_is_a_4xx_with_a_reason(polls: Polls) -> None:
    poll = await polls.create()
    pid = poll["poll_id"]
    fan = await polls.shopper()
    assert (await polls.vote(pid, "o9", fan)).status_code == 422
    assert (await polls.vote(pid, "home", fan)).status_code == 422
    assert (await polls.vote(pid, "o1", {})).status_code == 401
    r = await polls.vote("p_nosuchpollzz", "o1", fan)
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    assert (await polls.http.get("/p_nosuchpollzz")).status_code == 404
    assert (await polls.http.get("/", params={"placement": "basket"})).status_code == 422
    assert (await polls.http.get("/not-a-poll")).status_code == 422
    r = await polls.http.post(f"/{pid}/votes", content=b"{", headers=fan)
    assert r.status_code == 422
    for bad in (
        {"question": "q", "placement": "checkout", "options": [{"label": "only"}]},
        {"question": "q", "placement": "checkout", "options": [{"label": "a"}, {"label": "A"}]},
        {"question": "q", "placement": "checkout", "options": [{"label": "a"}, {"label": "b"}],
         "offer": {"percent_off": 10, "valid_s": 600}},
        {"question": "q", "placement": "checkout", "options": [{"label": "a"}, {"label": "b"}],
         "offer": {"percent_off": 90, "product_slug": "x", "valid_s": 600}},
        {"question": "q", "placement": "checkout",
         "options": [{"label": "a", "sku": "NO-SUCH-SKU-X"}, {"label": "b"}]},
    ):  # fmt: skip
        r = await polls.admin.http.post("/polls", json=bad, headers=polls.session)
        assert r.status_code == 422 and r.json()["message"], (bad, r.text)
    r = await polls.admin.http.post("/polls/p_nosuchpollzz/close", headers=polls.session)
    assert r.status_code == 404
    assert (await polls.admin.http.post("/polls", json={})).status_code == 401


async def test_idempotency_key_replays_the_vote_and_the_poll(polls: Polls) -> None:
    body = {"question": "Size?", "placement": "checkout",
            "options": [{"label": "S"}, {"label": "M"}]}  # fmt: skip
    headers = {**polls.session, "Idempotency-Key": uid("pc")}
    first = await polls.admin.http.post("/polls", json=body, headers=headers)
    second = await polls.admin.http.post("/polls", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["poll_id"] == second.json()["poll_id"]
    pid = first.json()["poll_id"]
    fan = await polls.shopper()
    key = {"Idempotency-Key": uid("v")}
    r1 = await polls.vote(pid, "o1", fan, headers=key)
    r2 = await polls.vote(pid, "o1", fan, headers=key)
    assert r1.status_code == r2.status_code == 201
    assert r2.headers.get("Idempotent-Replayed") == "true"
    reused = await polls.vote(pid, "o2", fan, headers=key)  # same key, another request
    assert reused.status_code == 422
    assert (await polls.http.get(f"/{pid}")).json()["total"] == 1


async def test_one_vote_per_shopper_under_concurrency_and_all_are_stored(polls: Polls) -> None:
    poll = await polls.create()
    pid = poll["poll_id"]
    fans = [await polls.shopper() for _ in range(50)]
    answers = await asyncio.gather(*(
        polls.vote_retrying(pid, f"o{1 + (i + n) % 3}", fans[i])
        for i in range(50) for n in range(4)
    ))  # fmt: skip
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 201, 409}, codes
    assert codes.count(201) == 50  # exactly one accepted vote per shopper
    results = (await polls.http.get(f"/{pid}")).json()
    assert results["total"] == 50
    await polls.drained()
    stored = await polls.service.repo.tally(pid)
    assert stored == {k: v for k, v in results["results"].items() if v}
    accepted = {a.json()["option_id"] for a in answers if a.status_code == 201}
    for i, fan in enumerate(fans[:5]):
        mine = (await polls.http.get(f"/{pid}", headers=fan)).json()["my_vote"]
        chosen = [a for a in answers[4 * i : 4 * i + 4] if a.status_code == 201]
        assert len(chosen) == 1 and mine == chosen[0].json()["option_id"] in accepted


async def test_votes_are_rate_limited_per_shopper(polls: Polls) -> None:
    pid = (await polls.create())["poll_id"]
    fan = await polls.shopper()
    codes = [
        (await polls.vote(pid, "o1", fan)).status_code for _ in range(polls_api.VOTE_BURST + 3)
    ]
    assert codes[0] == 201 and 429 in codes, codes
    limited = await polls.vote(pid, "o1", fan)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


async def test_results_stream_live_and_end_when_the_poll_closes(polls: Polls) -> None:
    """The live part drives the stream's generator (httpx's in-process transport buffers
    whole responses); tests/e2e follows the same stream over real HTTP."""
    pid = (await polls.create())["poll_id"]
    fan = await polls.shopper()
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for chunk in polls_api._follow(polls.service, pid):
            if chunk.startswith("event: results"):
                seen.append(json.loads(chunk.split("data: ", 1)[1]))

    task = asyncio.create_task(follow())
    async with asyncio.timeout(10):
        while not seen:
            await asyncio.sleep(0.02)
        assert seen[0] == {"results": {"o1": 0, "o2": 0, "o3": 0}, "total": 0, "status": "open"}
        assert (await polls.vote(pid, "o3", fan)).status_code == 201
        while seen[-1]["total"] != 1:
            await asyncio.sleep(0.02)
        assert seen[-1]["results"]["o3"] == 1
        await polls.admin.http.post(f"/polls/{pid}/close", headers=polls.session)
        await task  # the stream ends by itself once the poll is closed
    assert seen[-1]["status"] == "closed" and seen[-1]["total"] == 1

    # Over HTTP: the stream of a closed poll says so once and ends.
    async with polls.http.stream("GET", f"/{pid}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = (await r.aread()).decode()
    assert body.count("event: results") == 1 and '"status": "closed"' in body
    assert (await polls.http.get("/p_nosuchpollzz/events")).status_code == 404
