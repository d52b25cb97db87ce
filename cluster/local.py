"""The local stack: embedded PostgreSQL and Redis (or the operator's), Ray, the engine.

``matchday run`` uses this; so do the integration tests and the benchmark, so that what a
newcomer runs is what is tested. A small JSON file in the data directory tells later CLI
invocations where the running stack is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from cluster.processes import OWNER, ProcessBook, describe, end, leftovers
from cluster.serving import (
    deploy,
    haproxy_files,
    haproxy_folder,
    ingress_env,
    load_config,
    serve_env_defaults,
    shutdown,
)
from matchday.bootstrap import seed_demo
from matchday.embedded import EmbeddedPostgres, start_servers
from matchday.ops.stack_state import STATE_FILE
from matchday.settings import Settings
from matchday.storage.db import migrate
from matchday.supervisor import Supervisor

log = logging.getLogger(__name__)


@dataclass
class LocalStack:
    settings: Settings
    servers: list[Any] = field(default_factory=list)
    handles: dict[int, Any] = field(default_factory=dict)
    dashboard_url: str | None = None
    owns_ray: bool = False
    serving: bool = False
    apps: list[str] = field(default_factory=list)  # the Serve apps deployed
    supervisor: Supervisor | None = None

    @classmethod
    def start(
        cls,
        settings: Settings,
        *,
        dashboard: bool = True,
        seed: bool = True,
        serve: bool = True,
        say: Any = print,
        payments_worker: bool | None = None,  # default: with the HTTP apps
        apps: list[str] | None = None,  # serve_config.yaml's, by name; None: all of them
    ) -> LocalStack:
        import ray

        from actors.client import start_inventory

        data_dir = settings.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        end_leftovers(data_dir, say=say)
        book = ProcessBook(data_dir)
        book.clear()
        book.record(OWNER, os.getpid())
        say("starting PostgreSQL and Redis ...")
        db_url, redis_url, servers = start_servers(
            settings.database_url, settings.redis_url, data_dir
        )
        for server in servers:
            book.record(server.name, server.pid())
        settings = settings.model_copy(update={"database_url": db_url, "redis_url": redis_url})
        stack = cls(settings, servers)
        try:
            say("applying migrations ...")
            migrate(db_url)
            if seed:
                n = asyncio.run(seed_demo(settings))
                say(f"seeded {n} new demo SKUs and their catalogue")
            settings = settings.model_copy(update={"secret_key": SecretStr(secret_key(settings))})
            stack.settings = settings
            # Serve replicas read settings from the environment they inherit from Ray, which
            # inherits this process's: set before Ray starts, never written into a config.
            os.environ.update(
                {
                    "MATCHDAY_DATABASE_URL": db_url,
                    "MATCHDAY_REDIS_URL": redis_url,
                    "MATCHDAY_SECRET_KEY": settings.secret_key.get_secret_value(),
                    **ingress_env(settings.ingress),
                }
            )
            if settings.ingress == "haproxy":
                for name, value in haproxy_files(settings.data_dir).items():
                    os.environ.setdefault(name, value)
            serve_env_defaults()
            say("starting Ray ...")
            if not ray.is_initialized():
                ctx = ray.init(
                    address=settings.ray_address or None,
                    namespace=settings.namespace,
                    include_dashboard=dashboard,
                    dashboard_host=settings.dashboard_host,
                    configure_logging=True,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
                stack.owns_ray = not settings.ray_address
                stack.dashboard_url = getattr(ctx, "dashboard_url", None) or None
                if stack.owns_ray:
                    for role, pid in ray_processes():
                        book.record(role, pid)
            stack.supervise(book)
            say(f"starting {settings.shards}+{settings.dedicated_shards} inventory shards ...")
            stack.handles = start_inventory(settings)
            if serve:
                say(f"starting the HTTP apps ({settings.ingress} ingress) ...")
                config = load_config(
                    host=settings.http_host,
                    port=settings.http_port,
                    tls_certfile=settings.tls_certfile or None,
                    tls_keyfile=settings.tls_keyfile or None,
                    apps=apps,
                )
                deploy(config, say=say)
                stack.serving = True
                stack.apps = [a["name"] for a in config["applications"]]
            if payments_worker or (payments_worker is None and serve):  # ADR 0008
                from actors.payments_worker import start_payments_worker
                from actors.supplier_worker import start_supplier_worker

                start_payments_worker(settings)
                start_supplier_worker(settings)  # feeds and bulk syncs, ADR 0025
        except BaseException:
            stack.stop()
            raise
        stack.write_state()
        return stack

    def write_state(self) -> None:
        import ray

        state = {
            "pid": os.getpid(),
            "database_url": self.settings.database_url,
            "redis_url": self.settings.redis_url,
            "ray_address": ray.get_runtime_context().gcs_address,
            "namespace": self.settings.namespace,
            "shards": self.settings.shards,
            "dedicated_shards": self.settings.dedicated_shards,
            "dashboard_url": self.dashboard_url,
            "http_port": self.settings.http_port,
            "ingress": self.settings.ingress,
            "apps": self.apps,
            # Where Prometheus (or a test) reads this node's metrics, ours included.
            "metrics_export_port": getattr(
                getattr(ray._private.worker, "_global_node", None), "metrics_export_port", None
            ),
        }
        path = self.settings.data_dir / STATE_FILE
        path.write_text(json.dumps(state, indent=2))

    def describe(self) -> list[str]:
        s = self.settings
        embedded = {type(x).__name__ for x in self.servers}
        return [
            f"PostgreSQL  {s.database_url}"
            + ("  (embedded)" if "EmbeddedPostgres" in embedded else ""),
            f"Redis       {s.redis_url}" + ("  (embedded)" if "EmbeddedRedis" in embedded else ""),
            f"Ray         namespace {s.namespace!r}, dashboard "
            + (f"http://{self.dashboard_url}" if self.dashboard_url else "off"),
            f"Shards      {s.shards} on the ring + {s.dedicated_shards} dedicated for pinned SKUs",
            f"Events      Redis Stream {s.stream_name!r}, availability hash {s.availability_key!r}",
            f"Data        {s.data_dir.resolve()}",
        ] + (
            [
                f"HTTP        {'https' if s.tls_certfile else 'http'}://{s.http_host}:"
                f"{s.http_port}/api/catalog/products"
                f"  ({s.ingress} ingress; OpenAPI at /api/<app>/docs)",
                f"Apps        {', '.join(self.apps)}",
            ]
            if self.serving
            else []
        )

    def supervise(self, book: ProcessBook) -> None:
        """Restart the embedded servers if they die (matchday/supervisor.py, ADR 0020)."""
        from actors.metrics import safe_metrics

        if not self.servers:
            return

        def restarted(server: Any) -> None:
            book.record(server.name, server.pid(), replace=True)

        self.supervisor = Supervisor(self.servers, metrics=safe_metrics(), on_restart=restarted)
        self.supervisor.start()

    def stop(self, *, hurry: threading.Event | None = None, say: Any = print) -> None:
        """Stop everything, in a bounded time (ADR 0020): the orderly part gets ORDERLY_S
        (less once ``hurry`` is set: a second Ctrl-C), then what is left of this stack's
        processes is ended, then its servers are stopped with bounds of their own."""
        if self.supervisor is not None:
            self.supervisor.stop()
        if not _bounded(self._stop_ray, ORDERLY_S, hurry):
            say(f"the orderly stop did not end within {ORDERLY_S:.0f} s; ending the rest")
        data_dir = self.settings.data_dir.resolve()
        servers = {server.pid() for server in self.servers}
        left = leftovers(data_dir, haproxy_folder(data_dir), exclude=servers)
        if left:
            end(left)
        for server in reversed(self.servers):
            try:
                stop_server(server)
            except Exception as exc:
                log.warning("could not stop %s: %r", type(server).__name__, exc)
        left = leftovers(data_dir, haproxy_folder(data_dir))
        if left:
            say(f"still running after the stop, ending: {describe(left)}")
            end(left)
        (self.settings.data_dir / STATE_FILE).unlink(missing_ok=True)
        ProcessBook(data_dir).clear()
        shutil.rmtree(haproxy_folder(self.settings.data_dir), ignore_errors=True)

    def _stop_ray(self) -> None:
        import ray

        if not ray.is_initialized():
            return
        from actors.client import stop_inventory
        from actors.payments_worker import stop_payments_worker
        from actors.supplier_worker import stop_supplier_worker

        stop_payments_worker(self.settings)  # detached: it outlives us otherwise
        stop_supplier_worker(self.settings)
        if self.owns_ray:
            # Our own cluster: its shutdown ends every actor at once (replicas, shards).
            # Serve's graceful shutdown first took its full 30 s limit on every stop here
            # (its controller never reported the replicas gone; 37-39 s stops, 2026-12-02);
            # HAProxy, a child of a Ray worker, is ended by stop() afterwards.
            ray.shutdown()
            return
        if self.serving:
            shutdown()
        stop_inventory(self.settings)


# The orderly stop (the payments worker's, then Ray's) is a hang guard: past this, what is
# left of the stack is ended instead of waited for.
ORDERLY_S = 30.0
HURRIED_S = 2.0


def _bounded(work: Any, limit_s: float, hurry: threading.Event | None) -> bool:
    """Run ``work`` in a thread; whether it ended within ``limit_s`` (HURRIED_S after hurry)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported below, never lost in the thread
            errors.append(exc)

    thread = threading.Thread(target=run, name="matchday-stop", daemon=True)
    thread.start()
    deadline = time.monotonic() + limit_s
    while thread.is_alive() and time.monotonic() < deadline:
        thread.join(0.2)
        if hurry is not None and hurry.is_set():
            deadline = min(deadline, time.monotonic() + HURRIED_S)
    for exc in errors:
        log.warning("stopping: %r", exc)
    return not thread.is_alive()


def stop_server(server: Any) -> None:
    """Stop an embedded server within bounds: PostgreSQL fast, then immediate."""
    if not isinstance(server, EmbeddedPostgres):
        server.stop()
        return
    try:
        server.stop("fast", wait_s=15)
    except Exception as exc:
        log.warning("PostgreSQL's fast stop failed (%r); stopping it immediately", exc)
        server.stop("immediate", wait_s=10)


def ray_processes() -> list[tuple[str, int]]:
    """(kind, pid) of the Ray node processes this driver started (GCS, raylet, ...)."""
    import ray

    node = getattr(ray._private.worker, "_global_node", None)
    found = []
    for kind, infos in (getattr(node, "all_processes", None) or {}).items():
        for info in infos:
            pid = getattr(getattr(info, "process", None), "pid", None)
            if pid:
                found.append((f"ray {kind}", int(pid)))
    return found


def end_leftovers(data_dir: Path, *, say: Any = print) -> None:
    """End what a killed run of this data directory left running (ADR 0020), or refuse if
    that run is still alive."""
    data_dir = data_dir.resolve()
    owner = ProcessBook(data_dir).owner()
    if owner is not None and owner.pid != os.getpid():
        raise RuntimeError(
            f"a stack of {data_dir} is already running (pid {owner.pid}); "
            "`matchday status` shows it"
        )
    left = leftovers(data_dir, haproxy_folder(data_dir))
    if not left:
        return
    say(f"ending processes a stopped run of {data_dir} left running: {describe(left)}")
    killed = end(left)
    if killed:
        say(f"they did not stop within 5 s and were killed: pids {killed}")
    ProcessBook(data_dir).clear()


def secret_key(settings: Settings) -> str:
    """The configured key, else one generated once per data directory (a 0600 file)."""
    configured = settings.secret_key.get_secret_value()
    if configured:
        return configured
    path = settings.data_dir / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return path.read_text().strip()
