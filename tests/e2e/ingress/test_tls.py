"""HTTPS on the Serve ingress with a self-signed certificate (ADR 0012).

Serve's HTTP options are fixed at ``serve.start``, and the suite's shared Serve (the
``served`` fixture) is plain HTTP, so these tests run on the package's Python-proxy stack
(``python_run``): ``matchday run`` started with ``MATCHDAY_TLS_CERTFILE``/
``MATCHDAY_TLS_KEYFILE`` (Serve 2.60 terminates TLS only in the Python proxy). The HAProxy
ingress gets TLS from a front proxy (cluster/tls), tested below on the package's HAProxy
stack.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cluster.serving import load_config, refuse_tls_with_haproxy
from cluster.tls.front import FrontConfig, FrontProxy, TlsFrontError, write
from tests.e2e.certs import self_signed
from tests.e2e.conftest import free_port
from tests.e2e.run_stack import RunStack

pytestmark = pytest.mark.e2e


class TlsStack:
    def __init__(self, port: int, cert: Path, log: Path) -> None:
        self.port = port
        self.cert = cert
        self.log = log


@pytest.fixture
def tls_stack(python_run: RunStack) -> TlsStack:
    assert python_run.cert is not None, "the package's Python-proxy stack speaks HTTPS"
    return TlsStack(python_run.port, python_run.cert, python_run.log)


def test_the_ingress_answers_https_trusted_through_its_own_certificate(
    tls_stack: TlsStack,
) -> None:
    with httpx.Client(verify=ssl.create_default_context(cafile=str(tls_stack.cert))) as client:
        response = client.get(f"https://127.0.0.1:{tls_stack.port}/api/catalog/healthz")
    assert response.status_code == 200, tls_stack.log.read_text()[-2000:]
    assert response.json()["status"] == "ok"


def test_the_ingress_refuses_a_client_that_does_not_trust_the_certificate(
    tls_stack: TlsStack,
) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):  # system CAs only
        client.get(f"https://127.0.0.1:{tls_stack.port}/api/catalog/healthz")


def test_plain_http_gets_no_answer_from_the_tls_port(tls_stack: TlsStack) -> None:
    # uvicorn with a certificate only speaks TLS: a plain request never gets an HTTP answer
    # (the handshake fails and the connection is closed).
    with httpx.Client() as client, pytest.raises(httpx.TransportError):
        client.get(f"http://127.0.0.1:{tls_stack.port}/api/catalog/healthz")


def test_tls_with_the_haproxy_ingress_is_refused_before_serve_starts(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    config = load_config(tls_certfile=str(cert), tls_keyfile=str(key))
    assert config["http_options"]["ssl_certfile"] == str(cert)
    with pytest.raises(ValueError, match="Python proxy"):
        refuse_tls_with_haproxy(config, {"RAY_SERVE_ENABLE_HA_PROXY": "1"})
    refuse_tls_with_haproxy(config, {})  # the Python proxy takes it


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(ValueError, match="both"):
        load_config(tls_certfile=str(cert))


# -- TLS in front of the HAProxy ingress (cluster/tls) --------------------------------------
# Serve 2.60 cannot terminate TLS in HAProxy mode, so a second HAProxy (the binary of Ray's
# HAProxy mode) terminates it in front of a `matchday run` on the HAProxy ingress.


class FrontStack:
    def __init__(self, port: int, redirect: int, cert: Path, log: Path) -> None:
        self.port = port
        self.redirect = redirect
        self.cert = cert
        self.log = log

    def trusting(self) -> httpx.Client:
        return httpx.Client(verify=ssl.create_default_context(cafile=str(self.cert)))


@pytest.fixture(scope="module")
def haproxy_front(haproxy_run: RunStack) -> Iterator[FrontStack]:
    """The front proxy before the package's shared HAProxy stack (a stack of its own cost a
    whole `matchday run` start, about a minute of the suite)."""
    scratch = Path(tempfile.mkdtemp(prefix="matchday-tls-front-"))
    cert, key = self_signed(scratch)
    port, redirect = free_port(), free_port()
    config = FrontConfig(
        cert,
        key,
        listen=f"127.0.0.1:{port}",
        upstream=f"127.0.0.1:{haproxy_run.port}",
        redirect=f"127.0.0.1:{redirect}",
    )
    front = FrontProxy(config, scratch / "front").start()
    try:
        yield FrontStack(port, redirect, cert, haproxy_run.log)
    finally:
        front.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def test_the_front_proxy_serves_the_haproxy_ingress_over_https(haproxy_front: FrontStack) -> None:
    base = f"https://127.0.0.1:{haproxy_front.port}/api"
    with haproxy_front.trusting() as client:
        health = client.get(f"{base}/catalog/readyz")
        # A POST and a path no route has, through to a replica, which answers both in
        # matchday's shape. Neither spends 127.0.0.1's anonymous bucket (the catalogue's
        # limiter runs for a matched route only): the shared stack's other tests drain it,
        # and it refills once in 100 s, so a product lookup here got a 429 or a 404 by how
        # long ago they ran.
        post = client.post(f"{base}/catalog/products", json={})
        missing = client.get(f"{base}/catalog/no-such-route")
    assert health.status_code == 200, haproxy_front.log.read_text()[-2000:]
    assert health.json()["status"] == "ok"
    context = ssl.create_default_context(cafile=str(haproxy_front.cert))
    with (
        socket.create_connection(("127.0.0.1", haproxy_front.port), 5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.version() == "TLSv1.3"  # what a current client gets
    assert health.headers["strict-transport-security"] == "max-age=31536000"
    assert post.status_code == 405 and post.json()["code"] == "method_not_allowed"
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_the_front_proxy_refuses_a_client_that_does_not_trust_it(
    haproxy_front: FrontStack,
) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):  # system CAs only
        client.get(f"https://127.0.0.1:{haproxy_front.port}/api/catalog/healthz")


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated")
def test_the_front_proxy_refuses_tls_below_1_2(haproxy_front: FrontStack) -> None:
    context = ssl.create_default_context(cafile=str(haproxy_front.cert))
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    # The server's protocol-version alert: this client did offer TLS 1.1.
    with (
        httpx.Client(verify=context) as client,
        pytest.raises(httpx.ConnectError, match="PROTOCOL_VERSION"),
    ):
        client.get(f"https://127.0.0.1:{haproxy_front.port}/api/catalog/healthz")


def test_plain_http_is_not_served_but_redirected_to_https(haproxy_front: FrontStack) -> None:
    with httpx.Client() as client:
        with pytest.raises(httpx.TransportError):  # plain HTTP on the TLS port
            client.get(f"http://127.0.0.1:{haproxy_front.port}/api/catalog/healthz")
        moved = client.get(f"http://127.0.0.1:{haproxy_front.redirect}/api/catalog/healthz")
    assert moved.status_code == 301
    assert moved.headers["location"].startswith("https://127.0.0.1")
    assert moved.headers["location"].endswith("/api/catalog/healthz")


def test_the_front_proxy_refuses_a_key_that_is_not_the_certificates(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    _, other_key = self_signed(tmp_path / "other")
    with pytest.raises(TlsFrontError, match="inconsistencies between private key and cert"):
        write(FrontConfig(cert, other_key, listen=f"127.0.0.1:{free_port()}"), tmp_path / "f")


def test_the_front_proxy_bundle_is_private(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    cfg = write(FrontConfig(cert, key, listen=f"127.0.0.1:{free_port()}"), tmp_path / "front")
    assert (cfg.parent.stat().st_mode & 0o777) == 0o700
    assert ((cfg.parent / "tls.pem").stat().st_mode & 0o777) == 0o600
    assert key.read_bytes() in (cfg.parent / "tls.pem").read_bytes()


@pytest.mark.parametrize("address", ["8443", "127.0.0.1:", "127.0.0.1:99999", "a b:443"])
def test_the_front_proxy_refuses_a_malformed_address(tmp_path: Path, address: str) -> None:
    cert, key = self_signed(tmp_path)
    with pytest.raises(ValueError, match=r"HOST:PORT|whitespace"):
        FrontConfig(cert, key, listen=address)
