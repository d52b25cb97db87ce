"""``matchday screenshots``: the storefront's main pages as PNGs, for the README.

    matchday screenshots [--out docs/screenshots] [--url URL | --start] [--slug SLUG]

Targets the running stack (``matchday run``: its HTTP address from the same settings, its
database from ``<data_dir>/stack.json``), a storefront at ``--url``, or, with ``--start``, a
demo stack started for the purpose and stopped afterwards. A shopper's path in Debian's
Chromium (ADR 0015): catalogue, product, poll with results, cart with its countdown,
checkout, the order paid. The path buys one unit with the test card, and the poll needs an
admin: when the stack's database is reachable a short-lived admin key is made (audited, as
``matchday admin create-key`` does), used to open a demo poll on the product, and revoked.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import re
import time
from pathlib import Path
from typing import Any

from cluster.browser import VIEWPORT, Target, demo_stack, launch, missing_reason, settled
from matchday.settings import Settings

PAGES = ("catalogue", "product", "poll", "cart", "checkout", "order-paid")
TIMEOUT_MS = 30_000


def register(subparsers: Any) -> None:
    """Add ``screenshots`` to ``matchday``'s parser."""
    p = subparsers.add_parser("screenshots", help="PNGs of the storefront's main pages")
    p.add_argument("--out", type=Path, default=Path("docs/screenshots"), help="directory")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--url", help="the storefront's base URL (default: the running stack)")
    where.add_argument("--start", action="store_true", help="start a demo stack for this")
    p.add_argument("--slug", help="the product to show (default: the catalogue's first)")
    p.set_defaults(fn=cmd_screenshots)


def cmd_screenshots(args: argparse.Namespace, settings: Settings) -> int:
    reason = missing_reason()
    if reason:
        print(f"cannot take screenshots: {reason}")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    if args.start:
        with demo_stack() as stack:
            return asyncio.run(shoot(stack, args.out, args.slug))
    return asyncio.run(shoot(_target(args, settings), args.out, args.slug))


def _target(args: argparse.Namespace, settings: Settings) -> Target:
    from matchday.ops.stack_state import load_state

    if args.url:  # a stack elsewhere: its database only if this shell is configured for it
        return Target(args.url.rstrip("/"), settings.database_url)
    state = load_state(settings)
    if not state:
        raise SystemExit("no running stack found: `matchday run`, or pass --url or --start")
    # `matchday run` listens where these same settings say; its database is in the state file.
    scheme = "https" if settings.tls_certfile else "http"
    return Target(
        f"{scheme}://{settings.http_host}:{settings.http_port}",
        settings.database_url or state["database_url"],
    )


async def shoot(target: Target, out: Path, slug: str | None) -> int:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await launch(pw)
        try:
            context = await browser.new_context(
                base_url=target.base, viewport=VIEWPORT, service_workers="allow"
            )
            context.set_default_timeout(TIMEOUT_MS)
            page = await context.new_page()
            await walk(page, target, out, slug)
        finally:
            await browser.close()
    print(f"{len(PAGES)} screenshots in {out}")
    return 0


async def walk(page: Any, target: Target, out: Path, slug: str | None) -> None:
    async def snap(name: str) -> None:
        await settled(page)
        path = out / f"{name}.png"
        size = save_png(await page.screenshot(), path)
        print(f"  {name:<11} {page.url}  ->  {path} ({size // 1024} KiB)", flush=True)

    await page.goto("/")
    await page.wait_for_selector('[data-testid="product-card"]')
    slug = slug or await page.locator('[data-testid="product-card"]').first.get_attribute(
        "data-slug"
    )
    await snap("catalogue")

    poll = await open_demo_poll(target, slug) if target.database_url else None
    await page.goto(f"/p/{slug}")
    await page.wait_for_selector('[data-testid="size-option"]:enabled')
    await page.locator('[data-testid="size-option"]:enabled').first.click()
    await snap("product")

    if poll:
        widget = page.locator(f'[data-testid="poll"][data-poll-id="{poll}"]')
        await widget.locator('[data-testid="poll-option"]').first.click()
        await widget.get_by_test_id("poll-offer").wait_for()  # shown once the vote counted
        await widget.evaluate("(el) => el.scrollIntoView({block: 'center'})")
        await snap("poll")
        await page.evaluate("() => scrollTo(0, 0)")
    else:
        print("  poll        skipped: no database to make an admin key with (use --start)")

    async with page.expect_response(lambda r: r.request.method == "POST" and "/items" in r.url):
        await page.get_by_test_id("add-to-cart").click()
    await page.goto("/cart")
    await page.get_by_test_id("countdown").first.wait_for()
    await snap("cart")

    await page.goto("/checkout")
    await page.get_by_test_id("payment-token").select_option("pm_card_visa")
    await snap("checkout")

    await page.get_by_test_id("place-order").click()
    await page.wait_for_url("**/orders/**")
    status = page.get_by_test_id("order-status")
    await status.filter(has_text=re.compile(r"^\s*paid\s*$", re.I)).wait_for()
    await snap("order-paid")


def save_png(data: bytes, path: Path) -> int:
    """A 256-colour optimised PNG: UI screenshots lose nothing visible and shrink ~3x."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path.stat().st_size


async def open_demo_poll(target: Target, slug: str) -> str | None:
    """A poll with an offer on ``slug``'s page, opened through the admin API with a key made
    for this run and revoked right after. Returns the poll id."""
    import httpx
    import pyotp

    from cluster.cli_common import cli_operator
    from matchday.admin.audit import AuditLog
    from matchday.admin.auth import AdminAuth
    from matchday.storage.admin_repo import AdminRepository
    from matchday.storage.db import make_pool

    pool = make_pool(target.database_url, max_size=1, name="matchday-screenshots")
    await pool.open()
    try:
        repo = AdminRepository(pool)
        auth, audit = AdminAuth(repo), AuditLog(repo)
        api_key, totp_secret, _ = await auth.create_key("screenshots")
        key_id = api_key.split("_")[1]
        await audit.record(cli_operator(), "key.create", key_id, {"name": "screenshots"})
        try:
            async with httpx.AsyncClient(base_url=target.base, timeout=30.0) as http:
                code = pyotp.TOTP(totp_secret).at(time.time())
                r = await http.post(
                    "/api/admin/login", json={"api_key": api_key, "totp_code": code}
                )
                r.raise_for_status()
                session = {"Authorization": f"Bearer {r.json()['session_token']}"}
                product = (await http.get(f"/api/catalog/products/{slug}")).json()
                body = {
                    "question": "Which size do you wear on match day?",
                    "placement": f"product:{slug}",
                    "options": [
                        {"label": v.get("size") or v["sku"], "sku": v["sku"]}
                        for v in product["variants"][:4]
                    ],
                    "offer": {"percent_off": 10, "product_slug": slug, "valid_s": 3600},
                }
                r = await http.post(
                    "/api/admin/polls",
                    json=body,
                    headers={**session, "Idempotency-Key": f"screenshots-{key_id}"},
                )
                r.raise_for_status()
                poll_id: str = r.json()["poll_id"]
                return poll_id
        finally:
            await auth.revoke(key_id)
            await audit.record(cli_operator(), "key.revoke", key_id)
    finally:
        await pool.close()
