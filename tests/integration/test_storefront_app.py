"""The storefront app over HTTP in-process (httpx's ASGI transport, no mocks): cache headers,
ETag revalidation, br/gzip negotiation, the shell for app paths, JSON 404s, product pictures,
the security headers and the manifest."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from xml.etree import ElementTree

import brotli
import httpx
import pytest

from matchday.storefront.build import Bundle, bundle
from matchday.storefront.images import demo_slugs
from matchday.web.storefront_app import CSP, build

pytestmark = pytest.mark.integration

IMMUTABLE = "public, max-age=31536000, immutable"
APP_PATHS = [
    "/",
    "/p/jersey-arg-home",
    "/cart",
    "/checkout",
    "/orders/o_abc234",
    "/?category=balls",
]


@pytest.fixture(scope="module")
def files() -> Bundle:
    return bundle()


@pytest.fixture
async def client(files: Bundle) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build(files))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.test") as c:
        yield c


async def raw(client: httpx.AsyncClient, path: str, **headers: str) -> tuple[httpx.Response, bytes]:
    """The response and its body as sent (httpx would otherwise decode br and gzip)."""
    response = await client.send(client.build_request("GET", path, headers=headers), stream=True)
    body = b"".join([chunk async for chunk in response.aiter_raw()])
    await response.aclose()
    return response, body


async def test_hashed_assets_are_cached_for_a_year_with_an_etag(
    client: httpx.AsyncClient, files: Bundle
) -> None:
    for path in files.names.values():
        r = await client.get(path, headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200, path
        assert r.headers["cache-control"] == IMMUTABLE
        assert r.headers["etag"] == files.assets[path].etag
        assert r.headers["vary"] == "Accept-Encoding"
        assert r.content == files.assets[path].body
    js = await client.get(files.names["app.js"])
    assert js.headers["content-type"].startswith("text/javascript")
    css = await client.get(files.names["app.css"])
    assert css.headers["content-type"].startswith("text/css")


async def test_the_shell_the_worker_and_the_manifest_are_revalidated(
    client: httpx.AsyncClient, files: Bundle
) -> None:
    for path in ("/", "/sw.js", "/manifest.webmanifest"):
        r = await client.get(path)
        assert r.status_code == 200
        assert r.headers["cache-control"] == "no-cache"
        assert r.headers["etag"]


async def test_a_matching_if_none_match_is_answered_304_without_a_body(
    client: httpx.AsyncClient, files: Bundle
) -> None:
    for path in ("/", files.names["app.js"], "/static/img/ball-match-5.svg"):
        first = await client.get(path, headers={"Accept-Encoding": "br"})
        etag = first.headers["etag"]
        again = await client.get(path, headers={"Accept-Encoding": "br", "If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        weak = await client.get(
            path, headers={"Accept-Encoding": "br", "If-None-Match": f"W/{etag}"}
        )
        assert weak.status_code == 304
        other = await client.get(
            path, headers={"Accept-Encoding": "br", "If-None-Match": '"other"'}
        )
        assert other.status_code == 200 and other.content
    # The gzip variant has its own tag: a cached br copy does not validate a gzip request.
    br_tag = (await client.get("/", headers={"Accept-Encoding": "br"})).headers["etag"]
    r = await client.get("/", headers={"Accept-Encoding": "gzip", "If-None-Match": br_tag})
    assert r.status_code == 200


async def test_content_coding_follows_accept_encoding(
    client: httpx.AsyncClient, files: Bundle
) -> None:
    path = files.names["api.js"]
    asset = files.assets[path]
    cases = {
        "br, gzip": ("br", asset.br),
        "gzip, deflate, br;q=0": ("gzip", asset.gzip),
        "gzip;q=0.5": ("gzip", asset.gzip),
        "identity": (None, asset.body),
        "": (None, asset.body),
        "*": ("br", asset.br),
        "br;q=0, gzip;q=0": (None, asset.body),
        "bogus;q=x, gzip": ("gzip", asset.gzip),
    }
    for accept, (coding, body) in cases.items():
        r, sent = await raw(client, path, **{"Accept-Encoding": accept})
        assert r.headers.get("content-encoding") == coding, accept
        assert r.headers["vary"] == "Accept-Encoding"
        assert sent == body, accept
        decoded = {"br": brotli.decompress, "gzip": gzip.decompress}.get(coding or "", bytes)
        assert decoded(sent) == asset.body, accept


async def test_every_app_path_gets_the_shell(client: httpx.AsyncClient, files: Bundle) -> None:
    for path in APP_PATHS:
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("text/html")
        assert r.content == files.assets["/"].body
        assert 'data-ready="0"' in r.text


async def test_unknown_assets_and_api_paths_are_json_404s(client: httpx.AsyncClient) -> None:
    for path in (
        "/assets/app.000000000000.js",
        "/assets/..%2fsw.js",
        "/api/polls?placement=checkout",
        "/api/catalog/products",
        "/static/img/../../etc/passwd",
        "/static/img/Not-A-Slug.svg",
        "/static/img/ball.png",
        "/p/UPPER",
        "/orders/not-an-order",
    ):
        r = await client.get(path, headers={"Accept": "application/json"})
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/json"
        assert r.json()["code"] == "not_found", path
    posted = await client.post("/api/polls/p_1/votes", json={"option_id": "a"})
    assert posted.status_code == 404 and posted.json()["code"] == "not_found"


async def test_a_person_on_an_unknown_page_gets_the_app_with_a_404(
    client: httpx.AsyncClient, files: Bundle
) -> None:
    r = await client.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert r.status_code == 404
    assert r.content == files.assets["/"].body


async def test_the_storefront_takes_no_posts(client: httpx.AsyncClient) -> None:
    r = await client.post("/", content=b"x")
    assert r.status_code == 405
    assert r.json()["code"] == "method_not_allowed"


async def test_product_images_are_svg_and_immutable(client: httpx.AsyncClient) -> None:
    for slug in demo_slugs():
        r = await client.get(f"/static/img/{slug}.svg")
        assert r.status_code == 200, slug
        assert r.headers["content-type"] == "image/svg+xml"
        assert r.headers["cache-control"] == IMMUTABLE
        root = ElementTree.fromstring(r.content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.get("viewBox") == "0 0 400 400"
    r = await client.get("/static/img/scarf-new-product.svg")
    assert r.status_code == 200  # products a merchandiser adds get a picture too


async def test_every_answer_carries_a_strict_csp_and_nosniff(
    client: httpx.AsyncClient, files: Bundle
) -> None:
    for path in ("/", files.names["app.js"], "/sw.js", "/assets/nope.js", "/healthz"):
        r = await client.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-content-type-options"] == "nosniff"
    directives = dict(d.strip().split(" ", 1) for d in CSP.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe" not in CSP
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    shell = files.assets["/"].body.decode()
    assert "<script>" not in shell and "style=" not in shell and " on" not in shell.split(">")[0]


async def test_the_manifest_is_valid_and_its_icons_resolve(client: httpx.AsyncClient) -> None:
    r = await client.get("/manifest.webmanifest")
    assert r.headers["content-type"] == "application/manifest+json"
    manifest = json.loads(r.content)
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    sizes = set()
    for icon in manifest["icons"]:
        got = await client.get(icon["src"])
        assert got.status_code == 200, icon["src"]
        assert got.headers["content-type"] == icon["type"]
        assert got.headers["cache-control"] == IMMUTABLE
        sizes.add(icon["sizes"])
        if icon["type"] == "image/png":
            assert got.content.startswith(b"\x89PNG")
    assert {"192x192", "512x512"} <= sizes


async def test_health_and_readiness(client: httpx.AsyncClient, files: Bundle) -> None:
    assert (await client.get("/healthz")).json()["status"] == "ok"
    ready = (await client.get("/readyz")).json()
    assert ready == {"status": "ok", "checks": {"bundle": files.version}}
