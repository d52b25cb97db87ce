"""``matchday report``: merchandisers' reports from the materialized views. PostgreSQL only.

    matchday report NAME [--csv PATH] [--png PATH] [--refresh] [--limit N]

NAME is one of velocity, product-velocity, trending, turnover, dead-stock, payments,
chargebacks, suspicious. Rows are printed as a table; --csv and --png also write them to a
file and a bar chart. Reports are read from MATCHDAY_REPORTS_DATABASE_URL (a read replica)
when it is set, else from the primary; --refresh refreshes the views on the primary first
(otherwise they are as fresh as the last scheduled refresh).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from dataclasses import astuple, fields
from pathlib import Path
from typing import Any

from matchday.settings import Settings


def register(subparsers: Any) -> None:
    """Add ``report`` to ``matchday``'s parser."""
    from matchday.reports.registry import REPORTS

    p = subparsers.add_parser("report", help="merchandisers' reports (CSV, PNG)")
    p.add_argument("name", choices=sorted(REPORTS), help="which report")
    p.add_argument("--csv", type=Path, help="also write the rows to this CSV file")
    p.add_argument("--png", type=Path, help="also draw a bar chart to this PNG file")
    p.add_argument("--refresh", action="store_true", help="refresh the views first")
    p.add_argument("--limit", type=int, default=1000, help="at most this many rows")
    p.set_defaults(fn=cmd_report)


def _table(rows: Sequence[Any]) -> str:
    if not rows:
        return "(no rows)"
    head = [f.name for f in fields(rows[0])]
    body = [["" if v is None else str(v) for v in astuple(r)] for r in rows]
    widths = [max(len(c), *(len(line[i]) for line in body)) for i, c in enumerate(head)]
    lines = [head, *body]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    )


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import resolve
    from matchday.bootstrap import open_reports
    from matchday.reports.output import write_csv, write_png
    from matchday.reports.registry import REPORTS

    settings = resolve(settings)
    report = REPORTS[args.name]

    async def run() -> Sequence[Any]:
        async with open_reports(settings) as reports:
            if args.refresh:
                await reports.primary.refresh()
            return await report.fetch(reports.reader, args.limit)

    rows = asyncio.run(run())
    print(_table(rows))
    if args.csv:
        write_csv(rows, args.csv)
        print(f"wrote {len(rows)} rows to {args.csv}")
    if args.png:
        write_png(rows, report.chart, args.png)
        print(f"wrote a chart to {args.png}")
    return 0
