"""HTTPS on the Serve ingress with a self-signed certificate (ADR 0012).

Serve's HTTP options are fixed at ``serve.start``, and the suite's shared Serve (the
``served`` fixture) is plain HTTP, so this test runs its own stack: ``matchday run`` in a
subprocess with ``MATCHDAY_TLS_CERTFILE``/``MATCHDAY_TLS_KEYFILE`` and the Python proxy
(Serve 2.60 terminates TLS only there), in a scratch data directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cluster.serving import load_config, refuse_tls_with_haproxy
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, valid for a day; (cert, key) PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "matchday-test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


class TlsStack:
    def __init__(self, port: int, cert: Path, log: Path) -> None:
        self.port = port
        self.cert = cert
        self.log = log


@pytest.fixture(scope="module")
def tls_stack() -> Iterator[TlsStack]:
    scratch = Path(tempfile.mkdtemp(prefix="matchday-tls-"))
    cert, key = self_signed(scratch)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MATCHDAY_", "RAY_"))}
    env.update(
        MATCHDAY_DATA_DIR=str(scratch / "data"),  # run --fresh empties it: files live beside
        MATCHDAY_INGRESS="python",
        MATCHDAY_HTTP_PORT=str(port),
        MATCHDAY_TLS_CERTFILE=str(cert),
        MATCHDAY_TLS_KEYFILE=str(key),
        RAY_AUTH_MODE="disabled",  # a private, loopback-only cluster (ADR 0004)
    )
    log = scratch / "run.log"
    with log.open("w") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "cluster.cli", "run", "--fresh", "--no-dashboard", "--no-seed"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 240
        while "Stop: Ctrl-C" not in log.read_text():
            assert run.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(1)
        yield TlsStack(port, cert, log)
    finally:
        run.send_signal(signal.SIGINT)
        try:
            run.wait(60)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait()
        shutil.rmtree(scratch, ignore_errors=True)


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
