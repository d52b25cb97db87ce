"""Schemathesis against each app's OpenAPI document, over real HTTP on the Serve stack.

Property tests: generated valid and invalid requests never get a 5xx, and every answer
matches the documented status codes, content types and schemas.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pyotp
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.e2e.conftest import Served
from tests.e2e.test_admin_http import admin_key

pytestmark = pytest.mark.e2e

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
APPS = ["/api/catalog", "/api/shop", "/api/orders", "/api/admin", "/api/webhooks", "/api/polls"]
# Enough examples per operation to find a 5xx in a few seconds each; the suite's budget
# is minutes, not hours.
EXAMPLES = 25


def _token(served: Served, prefix: str) -> str:
    if prefix == "/api/admin":
        api_key, secret = asyncio.run(admin_key(served))
        code = pyotp.TOTP(secret).now()
        r = httpx.post(
            f"{served.base}/api/admin/login", json={"api_key": api_key, "totp_code": code}
        )
        r.raise_for_status()
        return str(r.json()["session_token"])
    r = httpx.post(f"{served.base}/api/shop/session", timeout=10)
    r.raise_for_status()
    return str(r.json()["token"])


@pytest.mark.parametrize("prefix", APPS)
def test_no_generated_request_gets_a_5xx_and_every_answer_matches_the_schema(
    served: Served, prefix: str
) -> None:
    base = served.base
    schema = schemathesis.openapi.from_url(f"{base}{prefix}/openapi.json")
    headers = {"Authorization": f"Bearer {_token(served, prefix)}"}
    failures: list[str] = []
    calls: dict[str, int] = {}
    tested = 0

    for op in schema.get_all_operations():
        operation = op.ok()
        if operation.path.endswith("/events"):
            continue  # a stream that stays open: covered by the e2e and in-process tests
        if operation.path == "/login":
            continue  # generated logins only lock the fuzzing key out; tests/e2e covers it
        tested += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            key = f"{case.method} {case.path}"
            calls[key] = calls.get(key, 0) + 1
            case.call_and_validate(base_url=f"{base}{prefix}", headers=headers, checks=CHECKS)

        try:
            run()
        except Exception as exc:  # collect all operations' failures, then fail once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    # Every operation but the event stream was exercised (those without parameters once).
    assert len(calls) == tested and max(calls.values()) >= EXAMPLES // 2, calls
