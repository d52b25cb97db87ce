"""What the polls feature needs from storage (matchday/storage/polls_repo.py implements it)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from matchday.polls.models import Poll, PollIn

# A vote as the write-behind drain stores it: (poll_id, customer_id, option_id, voted_at).
VoteRow = tuple[str, str, str, float]


class PollStore(Protocol):
    """Polls and their stored votes, for PollService."""

    async def create(self, poll_id: str, spec: PollIn, created_by: str | None) -> Poll:
        """Insert the poll (the same ``poll_id`` again returns the first one unchanged)."""
        ...

    async def poll(self, poll_id: str) -> Poll | None: ...

    async def open_polls(self, placement: str, limit: int = 20) -> list[Poll]: ...

    async def recent(self, limit: int = 100) -> list[Poll]: ...

    async def close(self, poll_id: str) -> Poll | None: ...

    async def votes(self, poll_id: str) -> list[tuple[str, str, float]]:
        """(customer_id, option_id, voted_at) of every stored vote."""
        ...

    async def vote_of(self, poll_id: str, customer_id: str) -> tuple[str, float] | None: ...

    async def tally(self, poll_id: str) -> dict[str, int]:
        """Stored votes per option id (the count when Redis is away)."""
        ...


class VoteStore(Protocol):
    """Where the write-behind drain puts votes (VoteDrain)."""

    async def store_votes(self, votes: Sequence[VoteRow]) -> int:
        """Insert drained votes; a repeat or a vote naming no option of its poll is skipped
        (one malformed entry cannot block the stream). Returns how many were new."""
        ...
