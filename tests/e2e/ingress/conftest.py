"""`matchday run` stacks shared by this package's tests (binds, ingress limits, load
shedding, TLS; the Python proxy's speaks HTTPS), and only by them: package-scoped, so they
stop when the package is done instead of idling (about 0.4 cores each) through the rest of
the e2e tier."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.run_stack import INGRESS_APPS, SHARED, RunStack, run_stack


@pytest.fixture(scope="package")
def haproxy_run() -> Iterator[RunStack]:
    """One `matchday run` on the HAProxy ingress, shared by the tests that only read it."""
    with run_stack("haproxy", *INGRESS_APPS, **SHARED) as stack:
        yield stack


@pytest.fixture(scope="package")
def python_run() -> Iterator[RunStack]:
    """The same on the Python proxy ingress, over HTTPS (the TLS tests share it: a stack of
    their own cost a whole start, about 50 s of the suite)."""
    with run_stack("python", *INGRESS_APPS, tls=True, **SHARED) as stack:
        yield stack
