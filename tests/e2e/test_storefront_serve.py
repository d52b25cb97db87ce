"""The storefront on the real Serve ingress at "/", beside the API apps: the shell, a hashed
asset and a product page come from the storefront, and /api/* still reaches its own apps
(Serve routes by longest prefix)."""

from __future__ import annotations

import re

import pytest

from matchday.storefront.build import bundle
from tests.e2e.conftest import Served
from tests.e2e.test_serve_http import new_product

pytestmark = pytest.mark.e2e


async def test_the_storefront_is_served_at_root_beside_the_apis(served: Served) -> None:
    slug, _ = await new_product(served, stock=3)
    files = bundle()
    async with served.client("") as http:
        home = await http.get("/", headers={"Accept-Encoding": "br"})
        assert home.status_code == 200
        assert home.headers["content-type"].startswith("text/html")
        assert home.headers["cache-control"] == "no-cache"
        assert home.headers["content-encoding"] == "br"
        assert home.content == files.assets["/"].body  # every replica builds the same bundle
        app_js = re.search(r'src="(/assets/app\.[0-9a-f]{12}\.js)"', home.text)
        assert app_js

        asset = await http.get(app_js.group(1))
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.content == files.assets[app_js.group(1)].body

        page = await http.get(f"/p/{slug}")
        assert page.status_code == 200 and page.content == home.content
        picture = await http.get(f"/static/img/{slug}.svg")
        assert picture.status_code == 200 and picture.headers["content-type"] == "image/svg+xml"

        catalog = await http.get(f"/api/catalog/products/{slug}")
        assert catalog.status_code == 200
        assert catalog.headers["content-type"] == "application/json"
        assert catalog.json()["slug"] == slug
        missing = await http.get("/api/catalog/products/no-such-product")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        assert (await http.get("/api/catalog/healthz")).json()["status"] == "ok"
        unknown = await http.get("/assets/app.000000000000.js")
        assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
