"""Counting what a piece of code costs in PostgreSQL: round trips, statements, transactions.

libpq traces every protocol message of a connection to a file (``PQtrace``); a pool built
with :func:`traced_pool` traces each connection it opens. :meth:`Wire.count` reads what was
sent since the last count:

- a **round trip** is a run of messages the client sent followed by the server's answer
  (pipeline mode sends several statements in one run);
- a **statement** is a simple ``Query`` or an extended ``Execute``;
- a **transaction** is a ``BEGIN`` ... ``COMMIT``/``ROLLBACK`` pair, or a statement sent
  outside one (autocommit: it is its own transaction).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import pq

from matchday.storage.db import Pool


@dataclass(frozen=True)
class Cost:
    round_trips: int
    statements: int
    transactions: int
    commands: tuple[str, ...]  # each statement's first word (BEGIN, COMMIT upper case)

    def __str__(self) -> str:
        return (
            f"{self.round_trips} round trips, {self.statements} statements,"
            f" {self.transactions} transactions"
        )


@dataclass
class Wire:
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wire-")))
    traced: list[tuple[psycopg.AsyncConnection[Any], Path]] = field(default_factory=list)
    read: dict[Path, int] = field(default_factory=dict)

    async def configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        path = self.folder / f"conn-{len(self.traced)}.trace"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        conn.pgconn.trace(fd)  # libpq's FILE* owns fd from here (closed by untrace)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        self.traced.append((conn, path))

    def _flush(self) -> None:
        """libpq buffers its trace: reopen each file so what was written is on disk."""
        for i, (conn, path) in enumerate(self.traced):
            if conn.closed:
                continue
            conn.pgconn.untrace()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            conn.pgconn.trace(fd)
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            self.traced[i] = (conn, path)

    def count(self) -> Cost:
        """What every traced connection sent and got since the last count."""
        self._flush()
        trips = statements = transactions = 0
        commands: list[str] = []
        for _conn, path in self.traced:
            text = path.read_text(errors="replace")
            start = self.read.get(path, 0)
            self.read[path] = len(text)
            t, s, x, c = _parse(text[start:].splitlines())
            trips, statements, transactions = trips + t, statements + s, transactions + x
            commands += c
        return Cost(trips, statements, transactions, tuple(commands))

    def close(self) -> None:
        """Stop tracing and remove the traces (after the pool closed)."""
        for conn, _path in self.traced:
            if not conn.closed:
                conn.pgconn.untrace()
        shutil.rmtree(self.folder, ignore_errors=True)


_QUERY = re.compile(r'\s*"(\w*)')
_PARSE = re.compile(r'\s*"([^"]*)"\s+"(\w*)')
_BIND = re.compile(r'\s*"[^"]*"\s+"([^"]*)"')


def _parse(lines: list[str]) -> tuple[int, int, int, list[str]]:
    trips = statements = transactions = 0
    commands: list[str] = []
    parsed: dict[str, str] = {}  # statement name -> its first word
    bound = ""
    in_tx = sending = False
    for line in lines:
        parts = line.split("\t", 3)
        if len(parts) < 3:
            continue
        direction, kind = parts[0], parts[2]
        rest = parts[3] if len(parts) > 3 else ""
        if direction == "B":
            trips += sending
            sending = False
            continue
        sending = True
        word = None
        if kind == "Parse" and (m := _PARSE.match(rest)):
            parsed[m.group(1)] = m.group(2).upper()
        elif kind == "Bind" and (m := _BIND.match(rest)):
            bound = parsed.get(m.group(1), "")
        elif kind == "Execute":
            word = bound
        elif kind == "Query" and (m := _QUERY.match(rest)):
            word = m.group(1).upper()
        if word is None:
            continue
        statements += 1
        if word == "BEGIN":
            in_tx = True
        elif word in ("COMMIT", "ROLLBACK"):
            in_tx = False
            transactions += 1
        elif not in_tx:
            transactions += 1
        if word in ("BEGIN", "COMMIT", "ROLLBACK"):
            commands.append(word)
        else:
            commands.append(word.lower() or "stmt")
    return trips, statements, transactions, commands


def traced_pool(url: str, wire: Wire, *, max_size: int = 4) -> Pool:
    """A pool like the web processes' (no check per borrow) whose connections ``wire`` counts."""
    return Pool(
        url, check=False, configure=wire.configure, min_size=1, max_size=max_size, open=False
    )
