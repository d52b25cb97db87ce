"""Assertions on logs look only at the logger under test.

pytest's caplog handler sits on the root logger: ``caplog.at_level(level, logger=name)``
sets that logger's level but still captures every record that propagates, from any logger
and any task, including background work of another test (issue 13, item 12).
"""

from __future__ import annotations

import logging

import pytest


def records_of(
    caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.WARNING
) -> list[logging.LogRecord]:
    """Records at ``level`` or above from ``logger`` and its children only."""
    return [
        r
        for r in caplog.records
        if r.levelno >= level and (r.name == logger or r.name.startswith(logger + "."))
    ]


def messages_of(
    caplog: pytest.LogCaptureFixture, logger: str, level: int = logging.WARNING
) -> list[str]:
    return [r.getMessage() for r in records_of(caplog, logger, level)]
