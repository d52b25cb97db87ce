"""Product pictures as SVG, drawn from the product's kind and colours: a jersey, boots or a
ball in the demo catalogue's team colours. Deterministic (the same bytes on every replica,
so they are cached as immutable), small (~1-2 KB), and safe: only our own numbers and colours
go into the markup, never text from a request.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

# The demo catalogue's colour words (matchday.catalog.demo) as paint.
COLOURS = {
    "sky blue": "#75aadb",
    "white": "#f4f5f7",
    "navy": "#1b2a4a",
    "yellow": "#f7d117",
    "blue": "#1f4fa3",
    "black": "#1b1f23",
    "red": "#c8102e",
    "orange": "#f36c21",
    "gold": "#c9a227",
    "volt": "#c6f432",
}
INK = "#1b1f23"


def _paint(words: str, slug: str) -> tuple[str, str]:
    """(main, second) colours for a colour description such as "Sky blue/white"."""
    found = [COLOURS[w.strip().lower()] for w in words.split("/") if w.strip().lower() in COLOURS]
    if not found:  # a product we have no colour words for: a stable colour from its slug
        hue = int(hashlib.sha256(slug.encode()).hexdigest()[:4], 16) % 360
        found = [f"hsl({hue},55%,42%)"]
    if len(found) == 1:
        found.append(INK if _light(found[0]) else COLOURS["white"])
    return found[0], found[1]


def _light(colour: str) -> bool:
    if not colour.startswith("#"):
        return False
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.299 * r + 0.587 * g + 0.114 * b > 150


@functools.cache
def _demo_colours() -> dict[str, str]:
    from matchday.catalog.demo import demo_products

    return {p.slug: p.variants[0].colour or "" for p in demo_products()}


def _jersey(main: str, second: str, striped: bool) -> str:
    body = (
        "M140 70L100 85L50 140L85 185L115 160V340H285V160L315 185L350 140L300 85L260 70"
        "Q200 110 140 70Z"
    )
    stripes = ""
    if striped:
        bars = "".join(
            f'<rect x="{x}" y="60" width="26" height="290"/>' for x in range(128, 290, 52)
        )
        stripes = f'<g clip-path="url(#s)" fill="{second}">{bars}</g>'
    trim = INK if second == COLOURS["white"] and striped else second
    return (
        f'<clipPath id="s"><path d="{body}"/></clipPath>'
        f'<path d="{body}" fill="{main}" stroke="{INK}" stroke-opacity=".25" stroke-width="3"/>'
        f"{stripes}"
        f'<path d="M140 70Q200 110 260 70Q200 96 140 70Z" fill="{trim}"/>'
        f'<path d="M50 140L85 185L96 176L61 131ZM350 140L315 185L304 176L339 131Z" fill="{trim}"/>'
        f'<circle cx="242" cy="130" r="11" fill="{trim}"/>'
    )


def _boots(main: str, second: str) -> str:
    studs = "".join(
        f'<rect x="{x}" y="284" width="16" height="16" rx="3"/>' for x in (96, 136, 176, 256, 296)
    )
    laces = "".join(f'<path d="M{x} 158l18 26"/>' for x in range(138, 210, 18))
    return (
        '<ellipse cx="205" cy="312" rx="150" ry="12" fill="#000" opacity=".08"/>'
        '<path d="M70 250L90 170Q100 150 130 150H190Q210 150 222 170L262 200Q330 214 340 248'
        f'Q345 272 318 276H92Q70 276 70 250Z" fill="{main}" stroke="{INK}" stroke-opacity=".3"'
        ' stroke-width="3"/>'
        f'<path d="M104 244Q200 232 312 214" stroke="{second}" stroke-width="12" fill="none"'
        ' stroke-linecap="round"/>'
        f'<g stroke="{second}" stroke-width="5" stroke-linecap="round">{laces}</g>'
        f'<rect x="72" y="272" width="272" height="16" rx="8" fill="{second}"/>'
        f'<g fill="{second}">{studs}</g>'
    )


def _pentagon(cx: float, cy: float, r: float, turn: float) -> str:
    points = (
        (
            cx + r * math.sin(turn + k * 2 * math.pi / 5),
            cy - r * math.cos(turn + k * 2 * math.pi / 5),
        )
        for k in range(5)
    )
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _ball(main: str, second: str) -> str:
    patches = [_pentagon(200, 200, 34, 0.0)]
    for k in range(5):
        angle = k * 2 * math.pi / 5 + math.pi / 5
        x, y = 200 + 96 * math.sin(angle), 200 - 96 * math.cos(angle)
        patches.append(_pentagon(x, y, 28, angle + math.pi))
    polys = "".join(f'<polygon points="{p}"/>' for p in patches)
    seams = "".join(
        f'<path d="M200 200L{200 + 130 * math.sin(a):.1f} {200 - 130 * math.cos(a):.1f}"/>'
        for a in (k * 2 * math.pi / 5 + math.pi / 5 for k in range(5))
    )
    return (
        '<ellipse cx="200" cy="345" rx="110" ry="12" fill="#000" opacity=".08"/>'
        '<clipPath id="b"><circle cx="200" cy="200" r="130"/></clipPath>'
        f'<circle cx="200" cy="200" r="130" fill="{main}"/>'
        f'<g clip-path="url(#b)"><g stroke="{INK}" stroke-opacity=".2" stroke-width="3">{seams}</g>'
        f'<g fill="{second}">{polys}</g></g>'
        f'<circle cx="200" cy="200" r="130" fill="none" stroke="{INK}" stroke-opacity=".35"'
        ' stroke-width="4"/>'
    )


def _tag(main: str, second: str) -> str:
    return (
        f'<rect x="90" y="110" width="220" height="180" rx="24" fill="{main}"/>'
        f'<circle cx="140" cy="160" r="16" fill="{second}"/>'
    )


@functools.cache
def product_svg(slug: str) -> bytes | None:
    """The picture at /static/img/<slug>.svg, or None for a name that is not a slug."""
    if not SLUG.match(slug):
        return None
    words = _demo_colours().get(slug, "")
    main, second = _paint(words, slug)
    if slug.startswith("jersey"):
        art = _jersey(main, second, striped="/" in words and "final" not in slug)
    elif slug.startswith("boots"):
        art = _boots(main, second)
    elif slug.startswith("ball"):
        art = _ball(main, second)
    else:
        art = _tag(main, second)
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 400" width="400" height="400"'
        ' role="img">'
        '<rect width="400" height="400" fill="#eef3f0"/>'
        f"{art}</svg>"
    )
    return svg.encode()


def demo_slugs() -> list[str]:
    return sorted(_demo_colours())
