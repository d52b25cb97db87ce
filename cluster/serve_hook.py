"""The Ray worker setup hook: where matchday's Serve ingress differs from Ray 2.60's.

Ray runs :func:`setup_worker` in every worker process it starts, before the worker hosts
anything, when ``__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR`` names it (what
``ray.init(runtime_env={"worker_process_setup_hook": ...})`` sets; see
``ray/_private/runtime_env/setup_hook.py``). ``cluster.serving.ingress_env`` puts it in the
environment Ray starts from, so Serve's own actors (the HAProxy manager, the Python proxy)
run it; ``cluster.serving.load_config`` also puts it in each app's ``runtime_env`` on a
loopback stack, so replicas run it on a Ray started elsewhere (the test suite's).

Each patch applies right after its Ray module is imported, so workers that never import
Serve (the inventory shards) pay nothing. They touch Ray-private names, so they are pinned
to Ray 2.60: each logs a warning when what it replaces is not there, and the e2e tests
(``test_binds.py``, ``test_ingress_limits.py``, ``test_load_shedding.py``) fail if an
upgrade undoes them. Nothing is exposed when one fails; the test is the guard.

- ``ray.serve._private.haproxy`` (HAProxy mode): the template gets matchday's limits,
  timeouts, JSON errors and client-address rules (``cluster.ingress_rules``) on every node,
  and, on a loopback-only node (ADR 0004), its stats (``*:8404``) and Prometheus
  (``:9101``) frontends bind 127.0.0.1 instead of all interfaces.
- ``ray.serve._private.replica``: on a loopback-only node each replica's inter-deployment
  gRPC server binds 127.0.0.1 instead of ``[::]``; Serve's own plain-text 503 inside a
  replica (a downstream deployment's queue is full) becomes JSON; the requests a replica
  sheds are counted in Serve's HTTP metrics, as the ones it serves are (ADR 0032); once
  Serve's server listens, a deployment with ``open_add_lane`` (the shop) opens its add lane
  at that port plus ``ADD_LANE_PORT_OFFSET``, counted in the replica's ongoing requests and
  HTTP metrics (ADR 0033), and HAProxy's template routes ordinary adds to it.
- ``ray.serve._private.proxy`` (Python proxy mode): Serve's own plain-text answers (the
  load-shedding 503 past ``max_queued_requests``, its 408 request timeout) become JSON in
  matchday's shape, with Retry-After; a client's own timeout and disconnect hints
  (``x-request-timeout-seconds``, ``x-request-disconnect-disabled``) are ignored, as the
  HAProxy frontend drops them.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from cluster.ingress_rules import (
    ADD_LANE_PORT_OFFSET,
    ERRORS,
    RETRY_AFTER_S,
    SHED,
    add_lane_backend,
    add_lane_routing,
    body,
    defaults_lines,
    frontend_lines,
    trusted_proxies,
)

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
TRUSTED_PROXIES_ENV = "MATCHDAY_TRUSTED_PROXIES"


def _on_loopback_node() -> bool:
    import ray

    try:
        return bool(ray.util.get_node_ip_address() == LOOPBACK)  # type: ignore[no-untyped-call]
    except Exception:  # not connected yet: decide at the first call instead
        return False


# ---- HAProxy (HAProxy mode) ----

# What Ray 2.60's template says, and what matchday puts there instead.
_HAPROXY_BINDS = {
    "bind :{{ config.metrics_port }}": "bind 127.0.0.1:{{ config.metrics_port }}",
    "bind *:{{ config.stats_port }}": "bind 127.0.0.1:{{ config.stats_port }}",
}
# Ray answers HAProxy's own 502/503/504 with one plain-text 500 file; matchday with JSON.
_RAY_ERRORFILES = """    # Normalize 502/503/504 to 500 per Serve's default behavior. 503
    # covers HAProxy's own "all retries exhausted / no server" response.
    {%- if config.error_file_path %}
    errorfile 502 {{ config.error_file_path }}
    errorfile 503 {{ config.error_file_path }}
    errorfile 504 {{ config.error_file_path }}
    {%- endif %}
"""
_FRONTEND_BIND = "    bind {{ config.frontend_host }}:{{ config.frontend_port }}\n"
_STATIC_ROUTING = (
    "    # Static routing based on path prefixes in decreasing length then alphabetical order\n"
)
_GRPC_FRONTEND = "{%- if config.grpc_enabled %}\nfrontend grpc_frontend\n"
_MARK = "# matchday (cluster/ingress_rules.py)"


def _jinja_raw(text: str) -> str:
    # The rules carry HAProxy's %[...] and {...}: keep Jinja's hands off them.
    return "{% raw %}" + text + "{% endraw %}"


def haproxy_template(template: str, *, loopback: bool, trusted: Sequence[str]) -> str:
    """Ray's HAProxy template with matchday's rules in it (idempotent)."""
    if _MARK in template:
        return template
    anchors = (_RAY_ERRORFILES, _FRONTEND_BIND, _STATIC_ROUTING, _GRPC_FRONTEND)
    missing = [s for s in anchors if s not in template]
    if loopback:
        missing += [old for old in _HAPROXY_BINDS if old not in template]
    if missing:
        log.warning("Ray's HAProxy template changed; cannot apply %s", missing)
    template = template.replace(
        _RAY_ERRORFILES, "    " + _MARK + "\n" + _jinja_raw(defaults_lines()), 1
    )
    template = template.replace(
        _FRONTEND_BIND, _FRONTEND_BIND + _jinja_raw(frontend_lines(trusted)), 1
    )
    # The add lane (ADR 0033): routed to before Ray's rules, its backend after Ray's.
    template = template.replace(_STATIC_ROUTING, add_lane_routing() + _STATIC_ROUTING, 1)
    template = template.replace(_GRPC_FRONTEND, add_lane_backend() + _GRPC_FRONTEND, 1)
    if loopback:
        for old, new in _HAPROXY_BINDS.items():
            template = template.replace(old, new)
    return template


def _patch_haproxy(module: ModuleType) -> None:
    trusted = trusted_proxies(os.environ.get(TRUSTED_PROXIES_ENV, ""))
    template: str = getattr(module, "HAPROXY_CONFIG_TEMPLATE")  # noqa: B009 - Ray-private
    patched = haproxy_template(template, loopback=_on_loopback_node(), trusted=trusted)
    setattr(module, "HAPROXY_CONFIG_TEMPLATE", patched)  # noqa: B010


# ---- Replicas ----

_REPLICA_GRPC_ADDRESS = "[::]:0"


def json_response_args(status: int, headers: list[tuple[bytes, bytes]] | None) -> dict[str, Any]:
    """Body and headers of Serve's own error answer in matchday's shape (503: Retry-After)."""
    error = SHED if status in (429, 503) else ERRORS.get(status, ERRORS[500])
    out = dict(headers or [])
    if status in (429, 503):
        out.setdefault(b"retry-after", str(RETRY_AFTER_S).encode())
    return {"body": json.loads(body(error)), "headers": list(out.items())}


def _unpatched(owner: Any, name: str, lost: str) -> Any:
    """``owner.name`` if Ray still has it and this hook has not replaced it yet, else None;
    a warning saying what is ``lost`` when Ray's replica no longer has it."""
    original = getattr(owner, name, None)
    if original is None:
        log.warning("Ray's replica changed: %s", lost)
        return None
    return None if getattr(original, "_matchday", False) else original


def _patch_replica(module: ModuleType) -> None:
    original = getattr(module, "add_port_to_grpc_server")  # noqa: B009 - Ray-private

    def add_port(server: Any, address: str) -> int:
        if address == _REPLICA_GRPC_ADDRESS and _on_loopback_node():
            address = f"{LOOPBACK}:0"  # the controller reaches it at the node IP, 127.0.0.1
        return int(original(server, address))

    setattr(module, "add_port_to_grpc_server", add_port)  # noqa: B010
    _count_shed_requests(module)
    _open_add_lane(module)

    wrapper = getattr(module, "UserCallableWrapper", None)
    handle = _unpatched(wrapper, "handle_exception", "Serve's 503s inside it stay plain text")
    if handle is None:
        return

    def handle_exception(self: Any, exc: Exception) -> Any:
        from starlette.responses import JSONResponse

        response = handle(self, exc)
        if response.status_code not in (429, 503):
            return response
        retry = response.headers.get("retry-after")
        args = json_response_args(
            response.status_code, [(b"retry-after", retry.encode())] if retry else None
        )
        return JSONResponse(
            args["body"],
            status_code=response.status_code,
            headers={k.decode(): v.decode() for k, v in args["headers"]},
        )

    handle_exception._matchday = True  # type: ignore[attr-defined]
    wrapper.handle_exception = handle_exception


def _count_shed_requests(module: ModuleType) -> None:
    """Serve's HTTP metrics count the requests a replica sheds (its 503 past
    ``max_queued_requests``) where each replica counts the rest: with HAProxy's per-request
    metrics off (ADR 0032), Ray 2.60's replica answers them without counting them."""
    replica = getattr(module, "Replica", None)
    accepts = _unpatched(replica, "_can_accept_request", "it sheds requests uncounted")
    protocol = getattr(module, "RequestProtocol", None)
    if accepts is None or protocol is None:
        return

    def can_accept(self: Any, meta: Any) -> bool:
        if accepts(self, meta):
            return True
        if meta.is_direct_ingress and meta.is_http_request:
            self._metrics_manager.record_ingress_request_metrics(
                protocol=protocol.HTTP,
                method=meta._http_method,
                route=meta.route,
                app_name=self._deployment_id.app_name,
                deployment_name=self._deployment_id.name,
                latency_ms=0.0,
                is_error=True,
                status_code=str(self.backpressure_config.status_code),
            )
        return False

    can_accept._matchday = True  # type: ignore[attr-defined]
    replica._can_accept_request = can_accept


class _LaneCounts:
    """The add lane's requests, counted where the replica counts its own: its ongoing
    requests (what Serve's autoscaling and the queue bound read) and its HTTP metrics."""

    def __init__(self, replica: Any, module: ModuleType, route: str) -> None:
        self.manager = replica._metrics_manager
        self.protocol = module.RequestProtocol.HTTP
        self.meta = module.RequestMetadata(
            request_id="add-lane",
            internal_request_id="add-lane",
            route=route,
            app_name=replica._deployment_id.app_name,
            is_direct_ingress=True,
            _request_protocol=self.protocol,
        )
        self.app_name = replica._deployment_id.app_name
        self.deployment = replica._deployment_id.name
        self.route = route

    def started(self) -> None:
        self.manager.inc_num_ongoing_requests(self.meta)

    def ended(self) -> None:
        self.manager.dec_num_ongoing_requests(self.meta)

    def answered(self, method: str, status: int, latency_ms: float) -> None:
        self.manager.record_ingress_request_metrics(
            protocol=self.protocol,
            method=method,
            route=self.route,
            app_name=self.app_name,
            deployment_name=self.deployment,
            latency_ms=latency_ms,
            is_error=status >= 500,
            status_code=str(status),
        )


def _open_add_lane(module: ModuleType) -> None:
    """Once a replica's Serve server listens, a deployment that has an add lane
    (``open_add_lane``: serve/shop.py) opens it at the port HAProxy's template expects."""
    replica = getattr(module, "Replica", None)
    start = _unpatched(replica, "_maybe_start_direct_ingress_servers", "no add lane opens")
    if start is None:
        return

    async def start_servers(self: Any) -> None:
        await start(self)
        user = self._user_callable_wrapper.user_callable
        opener = getattr(user, "open_add_lane", None)
        port = getattr(self, "_http_port", None)
        if opener is None or not port or self._http_options is None:
            return
        root = (self._http_options.root_path or "") + (self._route_prefix or "")
        scope = {"type": "http", "method": "POST", "path": root + "/carts/c_a/items"}
        scope["root_path"] = root
        try:
            await opener(
                host=self._http_options.host,
                port=port + ADD_LANE_PORT_OFFSET,
                root_path=root,
                limit=self.max_ongoing_requests + max(0, self.max_queued_requests),  # as Serve's
                hooks=_LaneCounts(self, module, self._determine_http_route(scope)),
            )
        except OSError as exc:  # HAProxy's check finds no lane: adds stay on Serve's port
            log.warning("no add lane on port %s: %s", port + ADD_LANE_PORT_OFFSET, exc)

    start_servers._matchday = True  # type: ignore[attr-defined]
    replica._maybe_start_direct_ingress_servers = start_servers


# ---- Python proxy ----


def _patch_proxy(module: ModuleType) -> None:
    original = getattr(module, "send_http_response_on_exception", None)
    convert = getattr(module, "convert_object_to_asgi_messages", None)
    if original is None or convert is None:
        log.warning("Ray's proxy changed: Serve's own errors stay plain text")
        return
    if getattr(original, "_matchday", False):
        return

    def send_json_on_exception(status: Any, response_started: bool) -> list[Any]:
        messages: list[Any] = original(status, response_started)
        if not messages:  # nothing to send (a response already started, or not an HTTP one)
            return messages
        args = json_response_args(int(status.code), status.headers)
        return list(
            convert(args["body"], status_code=int(status.code), extra_headers=args["headers"])
        )

    send_json_on_exception._matchday = True  # type: ignore[attr-defined]
    setattr(module, "send_http_response_on_exception", send_json_on_exception)  # noqa: B010
    ignore_client_hints(module)


def ignore_client_hints(module: ModuleType) -> None:
    """The Python proxy reads Serve's per-request hints (SERVE_HINT_HEADERS) from the client's
    own request: it takes the configured timeout and watches for disconnects instead."""
    if not all(
        hasattr(module, name)
        for name in ("parse_request_timeout_header", "parse_disconnect_disabled_header")
    ):
        log.warning("Ray's proxy changed: clients' timeout and disconnect hints may be honoured")
        return

    def configured_timeout(headers: Any, default_timeout_s: float | None) -> float | None:
        return default_timeout_s

    def disconnect_watched(headers: Any) -> bool:
        return False

    setattr(module, "parse_request_timeout_header", configured_timeout)  # noqa: B010
    setattr(module, "parse_disconnect_disabled_header", disconnect_watched)  # noqa: B010


_PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "ray.serve._private.replica": _patch_replica,
    "ray.serve._private.haproxy": _patch_haproxy,
    "ray.serve._private.proxy": _patch_proxy,
}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Applies a patch right after its module is imported."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module: ModuleType) -> None:
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


def setup_worker() -> None:
    """Worker setup hook (module doc). Safe to call more than once."""
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
