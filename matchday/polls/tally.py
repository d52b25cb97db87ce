"""Votes and tallies in Redis: one Lua script per vote, so one vote per shopper holds under
any concurrency, and the tally, the change signal and the write-behind record move together.

Per poll: ``state`` (a hash; its presence means the poll is loaded, ``status`` open/closed),
``voters`` (customer -> "option|voted_at"), ``tally`` (option -> count) and ``changes`` (a
short stream that wakes live results). Every accepted vote is also appended to the global
``votes`` stream, which the drain (matchday.polls.drain) writes to PostgreSQL.

A poll whose ``state`` is missing (never loaded, or Redis lost its data) refuses votes until
:meth:`Tally.load` has rebuilt it from PostgreSQL: counting on top of an empty voters hash
would let a shopper vote twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from matchday.domain.errors import Unavailable

T = TypeVar("T")

# Keys of a closed poll outlive it by a week (live pages still showing it), then go; a later
# read loads them back from PostgreSQL.
CLOSED_TTL_S = 7 * 86_400
LOAD_CHUNK = 1000

_VOTE = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'unloaded'} end
local prev = redis.call('HGET', KEYS[2], ARGV[1])
if prev then return {'voted', prev} end
if status ~= 'open' then return {'closed'} end
local rec = ARGV[2] .. '|' .. ARGV[3]
redis.call('HSET', KEYS[2], ARGV[1], rec)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('XADD', KEYS[4], 'MAXLEN', '~', '50', '*', 'v', ARGV[2])
redis.call('XADD', KEYS[5], '*', 'p', ARGV[4], 'c', ARGV[1], 'o', ARGV[2], 'at', ARGV[3])
return {'new', rec}
"""

# Swap freshly built copies in, unless another process loaded the poll meanwhile.
_SWAP = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[4], KEYS[5])
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('RENAME', KEYS[4], KEYS[2]) end
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('RENAME', KEYS[5], KEYS[3]) end
redis.call('HSET', KEYS[1], 'status', ARGV[1])
if ARGV[1] ~= 'open' then
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[2]) end
end
return 1
"""


@dataclass(frozen=True, slots=True)
class VoteResult:
    outcome: str  # new, voted (already, maybe another option), closed, unloaded
    option_id: str | None = None
    voted_at: float | None = None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def split_record(record: Any) -> tuple[str, float]:
    option, _, at = _text(record).partition("|")
    return option, float(at)


async def guarded(call: Awaitable[T]) -> T:
    """A Redis call whose failure is a retryable 503, never an unhandled driver error."""
    try:
        return await call
    except (RedisError, OSError) as exc:
        raise Unavailable(f"polls store unavailable: {type(exc).__name__}") from exc


class Tally:
    def __init__(self, redis: Redis, prefix: str = "matchday:poll") -> None:
        self.redis = redis
        self.prefix = prefix
        self.stream = f"{prefix}s:votes"
        self._vote: Any = redis.register_script(_VOTE)
        self._swap: Any = redis.register_script(_SWAP)

    def keys(self, poll_id: str) -> dict[str, str]:
        base = f"{self.prefix}:{poll_id}"
        return {n: f"{base}:{n}" for n in ("state", "voters", "tally", "changes")}

    async def vote(self, poll_id: str, customer_id: str, option_id: str, now: float) -> VoteResult:
        k = self.keys(poll_id)
        keys = [k["state"], k["voters"], k["tally"], k["changes"], self.stream]
        answer = await guarded(
            self._vote(keys=keys, args=[customer_id, option_id, f"{now:.3f}", poll_id])
        )
        outcome = _text(answer[0])
        if len(answer) > 1:
            option, at = split_record(answer[1])
            return VoteResult(outcome, option, at)
        return VoteResult(outcome)

    async def read(self, poll_id: str) -> tuple[str | None, dict[str, int]]:
        """(status, counts); status None when the poll is not loaded."""
        k = self.keys(poll_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hget(k["state"], "status")
            pipe.hgetall(k["tally"])
            status, counts = await guarded(pipe.execute())
        return (
            _text(status) if status is not None else None,
            {_text(o): int(n) for o, n in counts.items()},
        )

    async def vote_of(self, poll_id: str, customer_id: str) -> tuple[str, float] | None:
        record = await guarded(self.redis.hget(self.keys(poll_id)["voters"], customer_id))
        return None if record is None else split_record(record)

    async def loaded(self, poll_id: str) -> bool:
        return bool(await guarded(self.redis.exists(self.keys(poll_id)["state"])))

    async def load(
        self, poll_id: str, status: str, votes: Iterable[tuple[str, str, float]], tag: str
    ) -> bool:
        """Rebuild a poll from PostgreSQL's votes; False if another process loaded it first.

        Built under temporary keys in chunks (a big poll is not one huge command), then
        swapped in atomically with the state that lets votes in."""
        k = self.keys(poll_id)
        tmp_voters, tmp_tally = f"{k['voters']}:load:{tag}", f"{k['tally']}:load:{tag}"
        voters: dict[str, str] = {}
        counts: dict[str, int] = {}
        for customer, option, at in votes:
            voters[customer] = f"{option}|{at:.3f}"
            counts[option] = counts.get(option, 0) + 1
        items = list(voters.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for start in range(0, len(items), LOAD_CHUNK):
                pipe.hset(tmp_voters, mapping=dict(items[start : start + LOAD_CHUNK]))
            if counts:
                pipe.hset(tmp_tally, mapping=counts)  # type: ignore[arg-type]
            for key in (tmp_voters, tmp_tally):
                pipe.expire(key, 300)  # a loader that dies leaves nothing for long
            await guarded(pipe.execute())
        keys = [k["state"], k["voters"], k["tally"], tmp_voters, tmp_tally]
        return bool(await guarded(self._swap(keys=keys, args=[status, CLOSED_TTL_S])))

    async def close(self, poll_id: str) -> None:
        k = self.keys(poll_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            # Only a loaded poll is marked: an unloaded one loads as closed from PostgreSQL.
            pipe.eval(
                "if redis.call('EXISTS', KEYS[1]) == 1 then"
                " redis.call('HSET', KEYS[1], 'status', 'closed') end return 1",
                1,
                k["state"],
            )
            pipe.xadd(k["changes"], {"closed": "1"}, maxlen=50, approximate=True)
            for name in ("state", "voters", "tally", "changes"):
                pipe.expire(k[name], CLOSED_TTL_S)
            await guarded(pipe.execute())

    async def last_change(self, poll_id: str) -> str:
        newest = await guarded(self.redis.xrevrange(self.keys(poll_id)["changes"], count=1))
        return _text(newest[0][0]) if newest else "0-0"

    async def wait_change(self, poll_id: str, after: str, block_ms: int) -> str | None:
        """The newest change id after ``after``, or None if nothing changed within block_ms."""
        key = self.keys(poll_id)["changes"]
        found: Any = await guarded(self.redis.xread({key: after}, count=100, block=block_ms))
        if not found:
            return None
        entries = found[0][1]
        return _text(entries[-1][0]) if entries else None
