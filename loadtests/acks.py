"""The acknowledgement journal: what the shop promised the load test, for the audit to verify.

Every 201 on add-to-cart (a reservation) and every paid checkout is appended as one JSON line
to a file of this process's own (``acks-<host>-<pid>.jsonl`` under MATCHDAY_LT_ACK_DIR), so
Locust workers on several machines never share a file; copy them next to each other before
running the audit. A line is written and flushed as soon as the answer arrives: an ack the
load generator saw but lost in a crash would be one the audit cannot check, which is the
lesser evil than buffering (the audit counts what it checked).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO


@dataclass(frozen=True)
class Ack:
    kind: str  # "add" (a 201 on POST /carts/{id}/items) or "order" (a paid checkout)
    id: str  # the reservation id, or the order id
    sku: str  # the SKU added; "" for an order
    qty: int
    cart_id: str
    customer_id: str
    at: float


class AckJournal:
    """Append-only, one file per process, opened lazily so importing costs nothing."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._file: TextIO | None = None
        self.count = 0

    @property
    def path(self) -> Path:
        return self.directory / f"acks-{socket.gethostname()}-{os.getpid()}.jsonl"

    def append(self, ack: Ack) -> None:
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write(json.dumps(asdict(ack), separators=(",", ":")) + "\n")
        self._file.flush()
        self.count += 1

    def add(self, line: dict[str, Any], cart_id: str, customer_id: str) -> None:
        self.append(
            Ack("add", line["reservation_id"], line["sku"], int(line["qty"]), cart_id,
                customer_id, time.time())
        )  # fmt: skip

    def order(self, order: dict[str, Any], customer_id: str) -> None:
        qty = sum(int(line.get("qty", 0)) for line in order.get("lines", []))
        self.append(
            Ack("order", order["order_id"], "", qty, order["cart_id"], customer_id, time.time())
        )

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def ack_files(paths: Iterable[Path]) -> list[Path]:
    """Every ``*.jsonl`` named, or found in a named directory."""
    found: list[Path] = []
    for p in paths:
        found.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    return found


def read_acks(paths: Iterable[Path]) -> Iterator[Ack]:
    for path in ack_files(paths):
        with path.open(encoding="utf-8") as f:
            for n, raw in enumerate(f, 1):
                if not raw.strip():
                    continue
                try:
                    yield Ack(**json.loads(raw))
                except (ValueError, TypeError) as exc:
                    # A torn last line after a killed worker: say so, never skip silently.
                    raise ValueError(f"{path}:{n}: not an acknowledgement line: {exc}") from exc
