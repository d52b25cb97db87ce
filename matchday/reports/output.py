"""CSV and PNG output of report rows (dataclasses). matplotlib is imported only when a
chart is drawn, on its non-interactive Agg backend: reports run on servers without a display.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict, fields, is_dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from matchday.reports.registry import Chart


def csv_cell(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return "" if value is None else value


def write_csv(rows: Sequence[Any], path: Path, columns: Sequence[str] | None = None) -> int:
    """Write ``rows`` (dataclasses of one type) with a header line; return the row count.

    ``columns`` names the header when there are no rows, so an empty report is still a
    valid file with its header.
    """
    if rows:
        assert is_dataclass(rows[0])
        columns = [f.name for f in fields(rows[0])]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(list(columns or []))
        for row in rows:
            writer.writerow([csv_cell(v) for v in asdict(row).values()])
    return len(rows)


def write_png(rows: Sequence[Any], chart: Chart, path: Path) -> None:
    """A horizontal bar chart of the report's first ``chart.top`` rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    top = list(rows)[: chart.top]
    labels = [str(getattr(r, chart.label)) for r in top]
    values = [float(getattr(r, chart.value) or 0) for r in top]
    fig, ax = plt.subplots(figsize=(8, 1.5 + 0.35 * max(len(top), 1)))
    try:
        if top:
            ax.barh(range(len(top)), values, color="#2b6cb0")
            ax.set_yticks(range(len(top)), labels)
            ax.invert_yaxis()  # the first row at the top, like the CSV
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
        ax.set_title(chart.title)
        ax.set_xlabel(chart.value.replace("_", " "))
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png", dpi=100)
    finally:
        plt.close(fig)  # pyplot keeps every figure alive otherwise
