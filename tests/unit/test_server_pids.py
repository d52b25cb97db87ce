"""Finding a stack's local PostgreSQL and Redis processes (matchday/ops/server_pids.py); the
whole lookup against real servers runs in the bench and capacity tests."""

from __future__ import annotations

import os
from pathlib import Path

import psutil

from matchday.ops.server_pids import local, postmaster_pid


def test_the_postmaster_is_read_from_its_pid_file_and_a_bad_one_gives_none(
    tmp_path: Path,
) -> None:
    (tmp_path / "postmaster.pid").write_text("4242\n/var/lib/pg\n1733212800\n5432\n")
    assert postmaster_pid(tmp_path) == 4242
    (tmp_path / "postmaster.pid").write_text("not a pid\n")
    assert postmaster_pid(tmp_path) is None
    assert postmaster_pid(tmp_path / "missing") is None


def test_a_pid_counts_only_if_a_process_of_that_name_runs_here() -> None:
    me = os.getpid()
    name = psutil.Process(me).name()
    assert local(me, name) == me
    assert local(me, "redis-server-not-this") is None  # another program's pid
    assert local(None, name) is None and local(0, name) is None
    assert local(2**22 + 12345, name) is None  # no such process
