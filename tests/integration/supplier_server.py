"""A supplier's HTTP feed on loopback, for the pull tests: a real server (http.server in a
thread), told per test what to answer: a feed with an ETag, 304 to a matching
If-None-Match, 500s, or a hang."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Feed:
    body: bytes = b"[]"
    content_type: str = "application/json"
    etag: str = '"v1"'
    last_modified: str = "Wed, 02 Dec 2026 03:00:00 GMT"
    mode: str = "ok"  # ok | error (500) | hang
    hang_s: float = 3.0
    requests: list[dict[str, str]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    feed: Feed

    def do_GET(self) -> None:
        feed = self.server.feed  # type: ignore[attr-defined]
        feed.requests.append({k.lower(): v for k, v in self.headers.items()})
        if feed.mode == "hang":
            time.sleep(feed.hang_s)  # bounded: the server must stop at the test's end
            return
        if feed.mode == "error":
            self._send(500, b"oops", "text/plain")
            return
        if self.headers.get("If-None-Match") == feed.etag:
            self._send(304, b"", feed.content_type)
            return
        self._send(200, feed.body, feed.content_type)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        feed = self.server.feed  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("ETag", feed.etag)
        self.send_header("Last-Modified", feed.last_modified)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def supplier_server() -> Iterator[tuple[str, Feed]]:
    """(the feed's URL on 127.0.0.1, its behaviour)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    feed = Feed()
    server.feed = feed  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/feed", feed
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
