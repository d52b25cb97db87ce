"""Build the storefront bundle: minify, name by content hash, rewrite references, precompress.

Deterministic: the same sources give the same bytes, names and version on every machine, so
replicas built independently serve identical assets and a CDN can cache them forever. The
bundle is built once per process (:func:`bundle`) and can be written out for a CDN
(``matchday storefront build --out DIR``). Minifiers: rjsmin and rcssmin (ADR 0014).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import brotli
import rcssmin
import rjsmin

from matchday.storefront.icons import png_icon
from matchday.storefront.images import demo_slugs, product_svg

SRC = Path(__file__).resolve().parent / "src"
HASH_CHARS = 12
ICON_SIZES = (192, 512)
CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
    ".webmanifest": "application/manifest+json",
}
# Already compressed formats gain nothing from gzip or brotli.
INCOMPRESSIBLE = {".png"}
# A relative module specifier between our modules: `from "./x.js"`, `import("./x.js")`.
IMPORT = re.compile(r"""(\bfrom\s*|\bimport\s*\(?\s*)(["'])\./([A-Za-z0-9_-]+\.js)\2""")
PRELOAD_MARK = "<!-- modulepreload -->"


class BuildError(Exception):
    """The sources cannot be bundled (an import cycle, a missing module)."""


@dataclass(frozen=True)
class Asset:
    path: str  # the URL path it is served at
    body: bytes
    content_type: str
    immutable: bool  # content-hashed name (or content fixed by its name): cache forever
    etag: str
    gzip: bytes | None = None
    br: bytes | None = None


def make_asset(path: str, body: bytes, *, immutable: bool) -> Asset:
    suffix = Path(path if path != "/" else "/index.html").suffix
    packed_gz = packed_br = None
    if suffix not in INCOMPRESSIBLE:
        # mtime=0: no timestamp in the header, so the same input gives the same bytes.
        candidate = gzip.compress(body, 9, mtime=0)
        packed_gz = candidate if len(candidate) < len(body) else None
        candidate = brotli.compress(body, quality=11)
        packed_br = candidate if len(candidate) < len(body) else None
    return Asset(
        path=path,
        body=body,
        content_type=CONTENT_TYPES.get(suffix, "application/octet-stream"),
        immutable=immutable,
        etag=f'"{digest(body)[:20]}"',
        gzip=packed_gz,
        br=packed_br,
    )


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def hashed_name(logical: str, body: bytes) -> str:
    stem, dot, ext = logical.rpartition(".")
    return f"/assets/{stem}.{digest(body)[:HASH_CHARS]}{dot}{ext}"


@dataclass(frozen=True)
class Bundle:
    version: str
    assets: dict[str, Asset]  # by URL path
    names: dict[str, str]  # logical name ("app.js") -> URL path of its hashed asset
    images: dict[str, Asset] = field(default_factory=dict)  # demo product images by URL path

    def get(self, path: str) -> Asset | None:
        return self.assets.get(path)

    def write(self, out: Path) -> list[Path]:
        """Write every file (and its .gz/.br siblings) under ``out`` as a CDN would serve it."""
        written = []
        for asset in [*self.assets.values(), *self.images.values()]:
            target = out / ("index.html" if asset.path == "/" else asset.path.lstrip("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            for suffix, body in (("", asset.body), (".gz", asset.gzip), (".br", asset.br)):
                if body is not None:
                    path = target.with_name(target.name + suffix)
                    path.write_bytes(body)
                    written.append(path)
        return written


# rjsmin predates arrow functions: it reads a "/" right after "=>" as a division and breaks
# the regex literal there. The build refuses such code (hoist the regex into a const).
_REGEX_AFTER_ARROW = re.compile(r"=>\s*/(?![/*])")


def minify_js(source: str) -> str:
    if _REGEX_AFTER_ARROW.search(source):
        raise BuildError("a regex literal right after => would be mangled by rjsmin: hoist it")
    nested = nested_template_line(source)
    if nested is not None:
        raise BuildError(
            f"line {nested}: a template literal inside another's ${{...}} loses whitespace "
            "in rjsmin: build the inner text with + or a variable"
        )
    return str(rjsmin.jsmin(source)).strip() + "\n"


def nested_template_line(source: str) -> int | None:
    """The line of the first template literal opened inside another template's ``${...}``.

    rjsmin knows no template literals: it reads an inner backtick as the end of the outer
    string, and the text after it as code, whose spaces it drops (" · XS" became "· XS").
    Strings and comments are skipped; a backtick inside a regex literal is not expected.
    """
    frames: list[int] = []  # one per open ${...}: its depth of plain braces
    in_template = 0  # templates open, innermost last (each below frames' expressions)
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if in_template > len(frames):  # inside a template's text
            if c == "\\":
                i += 2
                continue
            if c == "`":
                in_template -= 1
            elif source.startswith("${", i):
                frames.append(0)
                i += 1
        elif source.startswith("//", i):
            i = source.find("\n", i)
            i = n if i < 0 else i
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif c in "'\"":
            i += 1
            while i < n and source[i] != c and source[i] != "\n":
                i += 2 if source[i] == "\\" else 1
        elif c == "`":
            if frames:
                return source.count("\n", 0, i) + 1
            in_template += 1
        elif c == "{" and frames:
            frames[-1] += 1
        elif c == "}" and frames:
            if frames[-1] == 0:
                frames.pop()  # back in the template's text
            else:
                frames[-1] -= 1
        i += 1
    return None


def minify_css(source: str) -> str:
    return str(rcssmin.cssmin(source)).strip() + "\n"


def minify_html(source: str) -> str:
    """Drop comments and the whitespace between tags; text inside tags is left as written."""
    source = re.sub(r"<!--(?!\s*modulepreload).*?-->", "", source, flags=re.S)
    return re.sub(r">\s+<", "><", source).strip() + "\n"


def _module_order(modules: dict[str, str]) -> list[str]:
    """Modules with each one's imports before it (their hashed names go into its text)."""
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise BuildError(f"import cycle: {' -> '.join((*chain, name))}")
        if name not in modules:
            raise BuildError(f"{chain[-1] if chain else '?'} imports a missing module {name}")
        state[name] = "visiting"
        for match in IMPORT.finditer(modules[name]):
            visit(match.group(3), (*chain, name))
        state[name] = "done"
        order.append(name)

    for name in sorted(modules):
        visit(name, ())
    return order


def _rewrite_imports(source: str, names: dict[str, str]) -> str:
    def swap(match: re.Match[str]) -> str:
        target = names[match.group(3)].rsplit("/", 1)[1]
        return f"{match.group(1)}{match.group(2)}./{target}{match.group(2)}"

    return IMPORT.sub(swap, source)


def _rewrite_refs(text: str, names: dict[str, str]) -> str:
    """``/assets/<logical>`` references (shell, manifest, CSS) to the hashed names."""
    for logical in sorted(names, key=len, reverse=True):
        text = re.sub(rf"/assets/{re.escape(logical)}(?=[\"')\s?#])", names[logical], text)
    return text


def build(src: Path = SRC) -> Bundle:
    names: dict[str, str] = {}
    assets: dict[str, Asset] = {}

    def add(logical: str, body: bytes) -> None:
        path = hashed_name(logical, body)
        names[logical] = path
        assets[path] = make_asset(path, body, immutable=True)

    # Leaves first: what the stylesheet, modules and shell point at must have its name.
    add("icon.svg", (src / "icon.svg").read_bytes())
    for size in ICON_SIZES:
        add(f"icon-{size}.png", png_icon(size))
    add("app.css", _rewrite_refs(minify_css((src / "app.css").read_text()), names).encode())
    modules = {p.name: minify_js(p.read_text()) for p in sorted((src / "js").glob("*.js"))}
    for name in _module_order(modules):
        add(name, _rewrite_refs(_rewrite_imports(modules[name], names), names).encode())

    preload = "".join(
        f'<link rel="modulepreload" href="{names[m]}">' for m in sorted(modules) if m != "app.js"
    )
    shell = minify_html((src / "index.html").read_text()).replace(PRELOAD_MARK, preload)
    shell = _rewrite_refs(shell, names)
    manifest = json.loads((src / "manifest.webmanifest").read_text())
    manifest_text = _rewrite_refs(json.dumps(manifest, separators=(",", ":")), names)

    version = digest("\n".join(sorted(names.values())).encode() + shell.encode())[:HASH_CHARS]
    precache = ["/", "/manifest.webmanifest", *sorted(names.values())]
    sw = minify_js((src / "sw.js").read_text())
    if '"__VERSION__"' not in sw or "__PRECACHE__" not in sw:
        raise BuildError("sw.js lost its __VERSION__ or __PRECACHE__ placeholder")
    sw = sw.replace('"__VERSION__"', json.dumps(version)).replace(
        "__PRECACHE__", json.dumps(precache, separators=(",", ":"))
    )
    for path, text in (("/", shell), ("/manifest.webmanifest", manifest_text), ("/sw.js", sw)):
        assets[path] = make_asset(path, text.encode(), immutable=False)
    return Bundle(version=version, assets=assets, names=names, images=_images(demo_slugs()))


def _images(slugs: Iterable[str]) -> dict[str, Asset]:
    images = {}
    for slug in slugs:
        body = product_svg(slug)
        assert body is not None
        path = f"/static/img/{slug}.svg"
        images[path] = make_asset(path, body, immutable=True)
    return images


@functools.cache
def image(slug: str) -> Asset | None:
    """Any product's picture (not only the demo's), made on first request and kept."""
    body = product_svg(slug)
    return None if body is None else make_asset(f"/static/img/{slug}.svg", body, immutable=True)


@functools.cache
def bundle() -> Bundle:
    """This process's bundle, built on first use."""
    return build()
