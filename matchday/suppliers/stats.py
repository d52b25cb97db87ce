"""Metrics of supplier lines, summed per tag set before they are recorded."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from matchday.metrics import SUPPLIER_LINES, Metrics
from matchday.suppliers.model import LineResult


def count_lines(metrics: Metrics, supplier_id: str, results: Iterable[LineResult]) -> None:
    counts = Counter((r.status, r.reason or "") for r in results)
    for (status, reason), n in counts.items():
        metrics.inc(
            SUPPLIER_LINES, n, {"supplier": supplier_id, "status": status, "reason": reason}
        )
