"""The storefront build: deterministic hashed names, rewritten references, smaller minified
files, precompressed variants that decode to the same bytes, and a service worker whose
precache list is exactly the bundle."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import struct
import zlib
from pathlib import Path
from xml.etree import ElementTree

import brotli
import pytest

from matchday.storefront import build as sf
from matchday.storefront.icons import png_icon
from matchday.storefront.images import demo_slugs, product_svg

SRC = sf.SRC


@pytest.fixture(scope="module")
def bundle() -> sf.Bundle:
    return sf.build()


def text(bundle: sf.Bundle, path: str) -> str:
    asset = bundle.get(path)
    assert asset is not None, path
    return asset.body.decode()


def test_two_builds_are_byte_for_byte_the_same(bundle: sf.Bundle) -> None:
    again = sf.build()
    assert again.version == bundle.version
    assert again.names == bundle.names
    for path, asset in bundle.assets.items():
        other = again.assets[path]
        assert (other.body, other.gzip, other.br, other.etag) == (
            asset.body, asset.gzip, asset.br, asset.etag,
        )  # fmt: skip


def test_assets_are_named_by_the_hash_of_their_content(bundle: sf.Bundle) -> None:
    assert re.fullmatch(r"/assets/app\.[0-9a-f]{12}\.js", bundle.names["app.js"])
    for logical, path in bundle.names.items():
        asset = bundle.assets[path]
        assert asset.immutable
        stem, ext = logical.rsplit(".", 1)
        assert path == f"/assets/{stem}.{sf.digest(asset.body)[:12]}.{ext}"
    for path in ("/", "/sw.js", "/manifest.webmanifest"):
        assert not bundle.assets[path].immutable


def test_a_changed_module_changes_its_name_and_every_importer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SRC, src)
    before = sf.build(src)
    api = src / "js" / "api.js"
    api.write_text(api.read_text() + "\nexport const CHANGED = 1;\n")
    after = sf.build(src)
    assert after.names["api.js"] != before.names["api.js"]
    assert after.names["sse.js"] != before.names["sse.js"]  # imports api.js
    assert after.names["polls.js"] != before.names["polls.js"]  # imports sse.js (and api.js)
    assert after.names["app.js"] != before.names["app.js"]
    assert after.names["dom.js"] == before.names["dom.js"]  # imports nothing that changed
    assert after.names["app.css"] == before.names["app.css"]
    assert after.version != before.version


def test_references_point_at_hashed_names_that_exist(bundle: sf.Bundle) -> None:
    shell = text(bundle, "/")
    assert f'<script type="module" src="{bundle.names["app.js"]}">' in shell
    assert f'href="{bundle.names["app.css"]}"' in shell
    for module in ("api.js", "dom.js", "catalog.js", "product.js", "cart.js", "polls.js"):
        assert f'<link rel="modulepreload" href="{bundle.names[module]}">' in shell
    manifest = json.loads(text(bundle, "/manifest.webmanifest"))
    referenced = re.findall(r"/assets/[\w.-]+", shell) + [i["src"] for i in manifest["icons"]]
    for path in referenced:
        assert path in bundle.assets, path
    assert not re.search(r"/assets/[a-z-]+\.(js|css|svg|png)\b", shell)  # none left unhashed
    for logical, path in bundle.names.items():
        if not logical.endswith(".js"):
            continue
        for spec in re.findall(r"""from\s*["']\./([^"']+)["']""", text(bundle, path)):
            assert f"/assets/{spec}" in bundle.assets, (logical, spec)
            assert re.fullmatch(r"[a-z]+\.[0-9a-f]{12}\.js", spec)


def test_minified_files_are_smaller_and_keep_what_matters(bundle: sf.Bundle) -> None:
    for logical, source in (("app.css", SRC / "app.css"), ("api.js", SRC / "js" / "api.js")):
        built = bundle.assets[bundle.names[logical]].body
        assert len(built) < 0.9 * len(source.read_bytes()), logical
    api = text(bundle, bundle.names["api.js"])
    assert "// Every call to the API" not in api  # comments gone
    assert "Idempotency-Key" in api and "`Bearer ${await token()}`" in api  # template literal kept
    shell = text(bundle, "/")
    assert "<!--" not in shell and "\n  <" not in shell
    assert 'data-testid="offline"' in shell


def test_precompressed_variants_decode_to_the_same_bytes(bundle: sf.Bundle) -> None:
    compressed = 0
    for path, asset in bundle.assets.items():
        if asset.gzip is not None:
            assert gzip.decompress(asset.gzip) == asset.body, path
            assert len(asset.gzip) < len(asset.body)
            compressed += 1
        if asset.br is not None:
            assert brotli.decompress(asset.br) == asset.body, path
            assert len(asset.br) < len(asset.body)
        if asset.content_type == "image/png":
            assert asset.gzip is None and asset.br is None  # PNG is compressed already
    assert compressed >= len(bundle.assets) - 2
    js = bundle.assets[bundle.names["api.js"]]
    assert js.gzip is not None and js.br is not None and len(js.br) < len(js.gzip)


def test_the_service_worker_precaches_exactly_the_bundle(bundle: sf.Bundle) -> None:
    sw = text(bundle, "/sw.js")
    version = re.search(r'const VERSION="([0-9a-f]+)"', sw)
    assert version and version.group(1) == bundle.version
    precache = json.loads(re.search(r"const PRECACHE=(\[.*?\]);", sw).group(1))  # type: ignore[union-attr]
    assert sorted(precache) == sorted(["/", "/manifest.webmanifest", *bundle.names.values()])
    assert "__PRECACHE__" not in sw and "__VERSION__" not in sw
    assert "md-static-${VERSION}" in sw and "md-runtime-${VERSION}" in sw


def test_an_import_cycle_or_a_missing_module_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SRC, src)
    dom = src / "js" / "dom.js"
    original = dom.read_text()
    dom.write_text('import { render } from "./catalog.js";\n' + original)  # catalog imports dom
    with pytest.raises(sf.BuildError, match="import cycle"):
        sf.build(src)
    dom.write_text('import { x } from "./nowhere.js";\n' + original)
    with pytest.raises(sf.BuildError, match=r"missing module nowhere\.js"):
        sf.build(src)


def test_a_service_worker_without_its_placeholders_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SRC, src)
    (src / "sw.js").write_text("const PRECACHE = [];\n")
    with pytest.raises(sf.BuildError, match="placeholder"):
        sf.build(src)


def test_write_lays_out_the_files_a_cdn_serves(bundle: sf.Bundle, tmp_path: Path) -> None:
    written = bundle.write(tmp_path)
    assert (tmp_path / "index.html").read_bytes() == bundle.assets["/"].body
    app = tmp_path / bundle.names["app.js"].lstrip("/")
    assert app.read_bytes() == bundle.assets[bundle.names["app.js"]].body
    assert brotli.decompress((app.parent / (app.name + ".br")).read_bytes()) == app.read_bytes()
    assert gzip.decompress((app.parent / (app.name + ".gz")).read_bytes()) == app.read_bytes()
    for slug in demo_slugs():
        assert (tmp_path / "static" / "img" / f"{slug}.svg").is_file()
    assert all(p.is_file() for p in written)


def test_the_build_command_writes_the_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cluster.cli import main

    # main() defaults Ray's settings for joining a stack; keep them out of this process.
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

    assert main(["storefront", "build", "--out", str(tmp_path / "cdn")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["version"] == sf.bundle().version
    for path in report["assets"]:
        assert (tmp_path / "cdn" / path.lstrip("/")).is_file()


def test_product_images_are_valid_svg_in_the_products_colours() -> None:
    for slug in demo_slugs():
        body = product_svg(slug)
        assert body is not None
        root = ElementTree.fromstring(body)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert len(body) < 4000
    assert b"#75aadb" in product_svg("jersey-arg-home")  # type: ignore[operator]  # sky blue
    assert b"#f7d117" in product_svg("jersey-bra-home")  # type: ignore[operator]  # yellow
    assert product_svg("jersey-arg-home") != product_svg("jersey-arg-away")
    assert product_svg("scarf-anything") is not None  # any product gets a stable picture
    assert product_svg("scarf-anything") == product_svg("scarf-anything")
    for bad in ("../etc/passwd", "A-UPPER", "", "x" * 65, "a<b"):
        assert product_svg(bad) is None


def test_png_icons_are_valid_pngs_of_their_size() -> None:
    for size in (192, 512):
        png = png_icon(size)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        length, kind = struct.unpack(">I4s", png[8:16])
        assert kind == b"IHDR" and length == 13
        width, height = struct.unpack(">II", png[16:24])
        assert (width, height) == (size, size)
        idat_at = png.index(b"IDAT")
        (idat_len,) = struct.unpack(">I", png[idat_at - 4 : idat_at])
        raw = zlib.decompress(png[idat_at + 4 : idat_at + 4 + idat_len])
        assert len(raw) == size * (1 + 3 * size)
    with pytest.raises(ValueError):
        png_icon(8)


def test_the_worker_warms_the_listing_the_catalogue_asks_for_first() -> None:
    page = re.search(r"const PAGE = (\d+);", (SRC / "js" / "catalog.js").read_text())
    assert page
    sw = (SRC / "sw.js").read_text()
    assert f'"/api/catalog/products?limit={page.group(1)}&offset=0"' in sw


def test_a_regex_right_after_an_arrow_is_refused_before_rjsmin_breaks_it(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(SRC, src)
    dom = src / "js" / "dom.js"
    dom.write_text(dom.read_text() + "\nexport const f = (s) => /a\\/b/.test(s);\n")
    with pytest.raises(sf.BuildError, match="hoist"):
        sf.build(src)
    assert sf.minify_js("const f = (a) => a / 2 / 3; // a comment\n") == "const f=(a)=>a/2/3;\n"


@pytest.mark.skipif(shutil.which("node") is None, reason="no node to parse the modules")
def test_every_minified_module_still_parses(bundle: sf.Bundle, tmp_path: Path) -> None:
    import subprocess

    for logical, path in bundle.names.items():
        if logical.endswith(".js"):
            target = tmp_path / f"{logical}.mjs"
            target.write_bytes(bundle.assets[path].body)
            done = subprocess.run(["node", "--check", str(target)], capture_output=True, text=True)
            assert done.returncode == 0, (logical, done.stderr)
    worker = tmp_path / "sw.js"
    worker.write_bytes(bundle.assets["/sw.js"].body)
    done = subprocess.run(["node", "--check", str(worker)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("const a = `x ${b ? ` · ${c}` : ''}`;\n", 1),
        ("const a = 1;\nconst t = `${f({k: `in`})}`;\n", 2),
        ("const a = `plain ${b} and ${c}`;\n", None),
        ("const a = '`'; // a ` in a comment\nconst t = `${x}`; /* ` */\n", None),
        ("const a = `${ {k: 1}.k }` + `next`;\n", None),
        ("const a = `\\` escaped ${b}`;\n", None),
    ],
)
def test_nested_template_literals_are_found_and_plain_ones_pass(
    source: str, line: int | None
) -> None:
    assert sf.nested_template_line(source) == line


def test_a_nested_template_literal_is_refused_before_rjsmin_drops_its_spaces() -> None:
    with pytest.raises(sf.BuildError, match="line 1"):
        sf.minify_js("const a = `x${b ? ` · ${c}` : ''}`;\n")
    assert "' · '" in sf.minify_js("const s = ' · ' + c;\nconst a = `x${s}`;\n")
