"""Merchandisers' reports over the admin API: ``GET /reports/{name}`` as JSON or CSV.

Read from the materialized views (refreshed on a schedule by the event publisher), through
the read replica when ``MATCHDAY_REPORTS_DATABASE_URL`` names one, so a report never loads
the primary that takes the orders.
"""

# No "from __future__ import annotations": FastAPI must resolve the dependency alias below.

import csv
import io
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, RootModel

from matchday.domain.errors import NotFound
from matchday.reports.output import csv_cell
from matchday.reports.registry import REPORTS
from matchday.web.admin_session import AdminCall, AdminGate
from matchday.web.base import body_of
from matchday.web.base import router as api_router
from matchday.web.context import AdminContext
from matchday.web.schemas import ErrorBody

ReportName = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[a-z][a-z-]*$")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No admin session"},
    404: {"model": ErrorBody, "description": "No such report"},
    200: {"content": {"text/csv": {}}},
}


class ReportsOut(RootModel[dict[str, str]]):
    """Each report's name, with what it shows."""


class ReportOut(BaseModel):
    report: str
    rows: list[dict[str, Any]] = Field(
        description="one object a row: the report's columns, as of its refresh"
    )


def router(gate: AdminGate, ctx: AdminContext) -> APIRouter:
    """The reports: which there are, and one's rows as JSON or CSV."""
    Reader = Annotated[AdminCall, Depends(gate.require(None))]
    repository = ctx.reports
    reports = api_router(tags=["reports"])

    @reports.get("/reports", responses={401: RESPONSES[401]}, response_model=ReportsOut)
    async def list_reports(call: Reader) -> ReportsOut:
        """The reports there are, with what each shows."""
        return ReportsOut(root={name: r.description for name, r in REPORTS.items()})

    # JSON as ReportOut, or with format=csv a CSV file (RESPONSES[200]): a Response either way.
    @reports.get("/reports/{name}", responses=RESPONSES, response_model=ReportOut)
    async def report(
        name: ReportName,
        call: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        format: Annotated[Literal["json", "csv"], Query()] = "json",
    ) -> Response:
        """One report's rows, as of its views' last refresh (``refreshed_at``)."""
        found = REPORTS.get(name)
        if found is None:
            raise NotFound("report", name)
        rows = await found.fetch(await repository(), limit)
        if format == "json":
            encoded = jsonable_encoder([asdict(r) for r in rows])
            return JSONResponse(body_of(ReportOut, {"report": name, "rows": encoded}))
        out = io.StringIO()
        writer = csv.writer(out)
        if rows:
            first = asdict(rows[0])
            writer.writerow(list(first))
            for row in rows:
                writer.writerow([csv_cell(v) for v in asdict(row).values()])
        return Response(
            out.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )

    return reports
