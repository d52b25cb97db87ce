"""What matchday adds to Ray Serve's HAProxy config: limits, timeouts, JSON errors, and one
client address per request. Pure text, no Ray: the worker setup hook (``cluster.serve_hook``)
splices it into Ray's template, and ``tests/unit/test_ingress_rules.py`` has HAProxy check it.

Values, and why an operator can defend them (docs/threat-model.md, ADR 0020):

- ``timeout http-request 10s`` with ``option http-buffer-request``: a client has 10 s from
  its first byte to the end of its headers and (buffered, up to ``tune.bufsize``) body. One
  packet carries a browser's request; 10 s covers a slow mobile link many times over, and a
  slowloris client trickling headers holds a connection 10 s instead of Ray's 3,600 s.
- ``timeout client 60s`` (``RAY_SERVE_HAPROXY_TIMEOUT_CLIENT_S``, Ray's knob; set by
  ``cluster.serving.ingress_env``): a client that stops reading or sending mid-request is cut
  after a minute. It does not cut live streams: the server writes every 15 s
  (``KEEPALIVE_S`` in orders_api.py) and writes to the client do not wait on it.
- URLs over 8 KiB get 414 and header blocks over 12 KiB get 431, both as JSON, well below
  HAProxy's buffer (16 KiB less 1 KiB of rewrite space). Past that buffer HAProxy's parser
  refuses the request before any rule runs, with its built-in page.
- HAProxy's own error answers (408 after a slow body, 502/503/504 when no replica answers)
  are JSON in matchday's shape, 503 with Retry-After; so are Serve's plain-text ones (the
  load-shedding 503 past ``max_queued_requests``, its 408/500).
- A waiting-room ticket's status polls and event streams (``/api/shop/drops/{id}/status``
  and ``/events``) are answered at most ``QUEUE_POLLS`` times in ``QUEUE_POLL_WINDOW_S`` per
  ticket; past that HAProxy answers 429 itself, with the window as Retry-After (ADR 0026).
  The queue page polls every 2 s and reconnects its stream after 2 s, so a fan never meets
  it. Refused polls count too: a bot polling four times a second stays refused (in the long
  drop run, 102 of its 20,731 polls got through), and its polls no longer queue in the shop
  replica beside the admitted fans' adds. The key is a SHA-1 of the whole ticket, the fan's
  signed credential: nobody can spend another fan's budget without holding its ticket.
- Serve's per-request hints (``x-request-timeout-seconds``, ``x-request-disconnect-disabled``)
  are dropped from every client request. The ingress sets them itself on an ordinary
  add-to-cart (POST, no query, a declared body of at most 4 KiB, which HAProxy holds whole
  before it forwards), so Serve awaits the add directly instead of through a task, a
  disconnect watcher and a timed wait; the app bounds the add itself (``ADD_TIMEOUT_S`` in
  matchday/web/fast_add.py, Serve's 30 s) and answers 503 when it runs out (issue 12).
- An ordinary add goes to the shop replicas' add lanes (ADR 0033), each replica's Serve port
  plus ``ADD_LANE_PORT_OFFSET``, while any lane's health check passes; else to the shop's
  backend, where the two hints above apply.
- Requests HAProxy cannot parse (a NUL in a header, a header block past its buffer, headers
  trickled past ``timeout http-request``) are answered by HAProxy 2.8's connection layer,
  which sends a compiled-in HTML page for 400/408 whatever the config says (``mux_h1.c``,
  ``h1_send_error``: only an empty error file is honoured, to send nothing). No JSON is
  possible there without patching HAProxy; the request never reaches a replica.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping, Sequence

HTTP_REQUEST_TIMEOUT_S = 10
CLIENT_TIMEOUT_S = 60
MAX_URL_BYTES = 8 * 1024
MAX_HEADER_BYTES = 12 * 1024
RETRY_AFTER_S = 1

# status: (code, message, retryable), the body of every error the ingress itself answers.
ERRORS: Mapping[int, tuple[str, str, bool]] = {
    400: ("bad_request", "malformed HTTP request", False),
    408: ("request_timeout", "the request was not received in time", True),
    414: ("uri_too_long", f"the URL is longer than {MAX_URL_BYTES} bytes", False),
    431: (
        "headers_too_large",
        f"the request headers are larger than {MAX_HEADER_BYTES} bytes",
        False,
    ),
    500: ("internal", "internal error; it has been logged", False),
    502: ("bad_gateway", "the shop did not answer properly; retry", True),
    503: ("unavailable", "the shop cannot take this request now; retry after the delay", True),
    504: ("gateway_timeout", "the shop did not answer in time; retry", True),
}
QUEUE_POLLS = 2
QUEUE_POLL_WINDOW_S = 2
QUEUE_POLL_PATH = r"^/api/shop/drops/[^/]+/(status|events)$"
QUEUE_POLL_LIMIT = (
    "rate_limited",
    "the status of this ticket was asked too often; retry after the delay",
    True,
)
# Serve's own 503 (a deployment's queue is full): matchday's code for load shedding.
SHED = ("overloaded", "the shop is at capacity; retry after the delay", True)

# Statuses HAProxy generates itself (http-error covers these); 414/431 come from our rules.
_HAPROXY_STATUSES = (400, 408, 500, 502, 503, 504)
# Statuses whose plain-text answer from Serve is rewritten (Serve's own, never matchday's:
# matchday answers JSON always).
_REWRITTEN = (400, 408, 500, 502, 503, 504)


def body(error: tuple[str, str, bool]) -> str:
    code, message, retryable = error
    return json.dumps(
        {"code": code, "message": message, "retryable": retryable}, separators=(",", ":")
    )


def _reply(status: int, error: tuple[str, str, bool], retry_after: str | None = None) -> str:
    text = body(error)
    assert "'" not in text, text  # it goes inside single quotes, where HAProxy has no escape
    if retry_after is None and status == 503:
        retry_after = str(RETRY_AFTER_S)
    retry = f" hdr Retry-After {retry_after}" if retry_after else ""
    return f"status {status} content-type application/json string '{text}'{retry}"


def defaults_lines() -> str:
    """Lines for the ``defaults`` section, in place of Ray's plain-text error file."""
    lines = [
        f"timeout http-request {HTTP_REQUEST_TIMEOUT_S}s",
        "option http-buffer-request",
        # A connection that never sent a byte (a browser's pre-connect) is closed without
        # the 408 page: a browser may show that answer for its next request.
        "option http-ignore-probes",
        *(f"http-error {_reply(s, ERRORS[s])}" for s in _HAPROXY_STATUSES),
    ]
    return "".join(f"    {line}\n" for line in lines)


def trusted_proxies(raw: str) -> list[str]:
    """Parse ``MATCHDAY_TRUSTED_PROXIES``: comma-separated addresses or networks (CIDR).

    Raises ValueError on anything else: a typo must not silently trust nobody or everybody.
    """
    found = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError as exc:
            raise ValueError(f"MATCHDAY_TRUSTED_PROXIES: {item!r} is not an address") from exc
    return found


# Ray 2.60's per-request hints (ray/serve/_private/constants.py), read by its proxy and by a
# replica's direct ingress from every request.
SERVE_HINT_HEADERS = ("x-request-timeout-seconds", "x-request-disconnect-disabled")
# The shop's add-to-cart (matchday.web.fast_add) and the most of a body it is sent with.
SHOP_PREFIX = "/api/shop"
HOT_ADD_PATH = rf"^{SHOP_PREFIX}/carts/[^/]+/items$"
HOT_ADD_MAX_BODY = 4096
# The add lane (ADR 0033): each shop replica serves ordinary adds on its Serve port plus
# this, a port Ray's own ranges leave free (Serve's HTTP ports are 30000-31000, its gRPC
# ports 40000-41000, Linux's ephemeral ones start at 32768).
ADD_LANE_PORT_OFFSET = 1000
ADD_LANE_HEALTH_PATH = "/-/add-lane"
HOT_ADD = "md_hot_add md_post !md_query md_small_body"


def frontend_lines(trusted: Sequence[str] = ()) -> str:
    """Rules for ``frontend http_frontend``, right after its ``bind``.

    Client address: replicas see exactly one address in X-Forwarded-For, never the client's
    own claim. From a trusted proxy (a load balancer, the TLS front proxy) it is the last
    address that proxy appended; from anyone else it is the connection's source. The
    replica's uvicorn trusts HAProxy (FORWARDED_ALLOW_IPS) and takes it as the client.
    """
    lines = [
        f"http-request return {_reply(414, ERRORS[414])} if {{ url,length gt {MAX_URL_BYTES} }}",
        f"http-request return {_reply(431, ERRORS[431])}"
        f" if {{ req.hdrs,length gt {MAX_HEADER_BYTES} }}",
    ]
    if trusted:
        lines += [
            f"acl md_trusted_peer src {' '.join(trusted)}",
            "acl md_forwarded req.hdr(x-forwarded-for) -m found",
            "http-request set-header X-Forwarded-For %[req.hdr(x-forwarded-for,-1)]"
            " if md_trusted_peer md_forwarded",
            "http-request set-header X-Forwarded-For %[src] unless md_trusted_peer md_forwarded",
            "http-request del-header X-Forwarded-Proto unless md_trusted_peer",
        ]
    else:
        lines += [
            "http-request set-header X-Forwarded-For %[src]",
            "http-request del-header X-Forwarded-Proto",
        ]
    lines += ["http-request del-header Forwarded", "http-request del-header X-Real-IP"]
    lines += queue_poll_lines()
    # Serve's per-request hints are for its own proxies, never a client's: honoured, a
    # client's "x-request-timeout-seconds: 0" held a replica's request slot for as long as it
    # liked, a tiny one got a 500, and a value that is not UTF-8 crashed the replica's parse.
    lines += [f"http-request del-header {name}" for name in SERVE_HINT_HEADERS]
    # ...but the hot add gets two from the ingress itself: Serve then awaits the app directly
    # instead of a task per request watching for a disconnect and a wait with its timeout
    # (issue 12: ~10% of the shop replica's CPU per add). The app bounds the add instead
    # (matchday.web.fast_add.ADD_TIMEOUT_S), and a client that leaves mid-add lets it
    # finish: its retry, by the same Idempotency-Key, gets the answer. Only a body HAProxy
    # has whole before it forwards (a declared length within its buffer, http-buffer-request)
    # qualifies, so no client can hold the untimed request open by trickling its body.
    hot = HOT_ADD
    lines += [
        f"acl md_hot_add path_reg {HOT_ADD_PATH}",
        "acl md_post method POST",
        "acl md_query query -m found",
        f"acl md_small_body req.hdr_val(content-length) le {HOT_ADD_MAX_BODY}",
        f"http-request set-header x-request-disconnect-disabled ?1 if {hot}",
        f"http-request set-header x-request-timeout-seconds 0 if {hot}",
    ]
    # Serve's plain-text answers. Its 503 is load shedding (a full queue) and keeps the
    # Retry-After that backpressure_config gave it.
    plain = "!{ res.hdr(content-type) -m beg application/json }"
    lines += [
        # A return replaces the response, so its headers are read into a variable first.
        "http-response set-var(txn.md_retry_after) res.hdr(retry-after) if { status 503 }",
        f"http-response return {_reply(503, SHED, '%[var(txn.md_retry_after)]')}"
        f" if {{ status 503 }} {plain} {{ var(txn.md_retry_after) -m found }}",
        *(
            f"http-response return {_reply(s, SHED if s == 503 else ERRORS[s])}"
            f" if {{ status {s} }} {plain}"
            for s in _REWRITTEN
        ),
    ]
    return "".join(f"    {line}\n" for line in lines)


def queue_poll_lines() -> list[str]:
    """A waiting-room ticket's polls, limited at the ingress (module docstring)."""
    # A client that waits this long between polls stays under the budget: HAProxy weighs the
    # previous window into the rate, and one poll a second can be refused now and then.
    retry = str(QUEUE_POLL_WINDOW_S)
    return [
        f"stick-table type binary len 20 size 1m expire {QUEUE_POLL_WINDOW_S * 5}s"
        f" store http_req_rate({QUEUE_POLL_WINDOW_S}s)",
        f"acl md_queue_poll path_reg {QUEUE_POLL_PATH}",
        "acl md_ticket url_param(ticket) -m found",
        "http-request track-sc2 url_param(ticket),sha1 if md_queue_poll md_ticket",
        f"http-request return {_reply(429, QUEUE_POLL_LIMIT, retry)}"
        f" if md_queue_poll md_ticket {{ sc_http_req_rate(2) gt {QUEUE_POLLS} }}",
    ]


def add_lane_routing() -> str:
    """Jinja for the frontend, before Ray's own routing: an ordinary add goes to the shop
    replicas' add lanes while any is up, else on to the shop's backend as before."""
    lane = "{{ backend.name or 'unknown' }}-add-lane"
    return (
        "{%- for backend in backends %}{%- if backend.path_prefix == '" + SHOP_PREFIX + "' %}\n"
        f"    use_backend {lane} if {HOT_ADD} {{ nbsrv({lane}) ge 1 }}\n"
        "{%- endif %}{%- endfor %}\n"
    )


def add_lane_backend() -> str:
    """Jinja for the add lanes' backend: the shop's servers at the lane's port, each checked
    on the lane's own health path, with the shop backend's timeouts."""
    return (
        "{%- for item in backends_with_health_config %}{%- set backend = item.backend %}"
        "{%- if backend.path_prefix == '" + SHOP_PREFIX + "' %}\n"
        "backend {{ backend.name or 'unknown' }}-add-lane\n"
        "    log global\n"
        "    http-reuse always\n"
        "    {%- if backend.timeout_connect_s is not none %}\n"
        "    timeout connect {{ backend.timeout_connect_s }}s\n"
        "    {%- endif %}\n"
        "    {%- if backend.timeout_server_s is not none %}\n"
        "    timeout server {{ backend.timeout_server_s }}s\n"
        "    {%- endif %}\n"
        f"    option httpchk GET {ADD_LANE_HEALTH_PATH}\n"
        "    http-check expect status 200\n"
        "    {{ item.health_config.default_server_directive }}\n"
        # HAProxy counts a new server UP until its checks fail: a lane that is not listening
        # (switched off, or its port taken) is marked down by its first refused connection,
        # and the retry goes to a backup, the same replica's Serve port (its health tracked).
        "    {%- for server in backend.servers %}\n"
        "    server {{ server.name }} {{ server.host }}:{{ server.port + "
        + str(ADD_LANE_PORT_OFFSET)
        + " }} check observe layer4 error-limit 1 on-error mark-down\n"
        "    {%- endfor %}\n"
        "    {%- for server in backend.servers %}\n"
        "    server {{ server.name }}-serve {{ server.host }}:{{ server.port }} backup no-check"
        " track {{ backend.name or 'unknown' }}/{{ server.name }}\n"
        "    {%- endfor %}\n"
        "{%- endif %}{%- endfor %}\n"
    )
