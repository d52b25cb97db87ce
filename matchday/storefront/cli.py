"""``matchday storefront build --out DIR``: the bundle as files, for a CDN upload."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from matchday.settings import Settings


def cmd_storefront(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.storefront.build import build  # only this command pays for the minifiers

    out = Path(args.out)
    bundle = build()
    written = bundle.write(out)
    print(
        json.dumps(
            {
                "version": bundle.version,
                "out": str(out.resolve()),
                "files": len(written),
                "assets": sorted(bundle.names.values()),
            },
            indent=2,
        )
    )
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("storefront", help="the storefront PWA's bundle")
    action = p.add_subparsers(dest="action", required=True)
    b = action.add_parser(
        "build", help="write the minified, hashed, precompressed bundle (for a CDN)"
    )
    b.add_argument("--out", required=True, help="directory to write (created if missing)")
    b.set_defaults(fn=cmd_storefront)
