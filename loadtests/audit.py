"""Post-run audit: did the surge oversell, double-charge, or lose an acknowledged hold?

    python -m loadtests.audit                       # the running stack (its stack.json)
    python -m loadtests.audit --acks loadtests/out/acks --grace-s 60
    python -m loadtests.audit --database-url postgresql://... --sku-like 'JERSEY-FINAL-%'

Checks, in one consistent snapshot of PostgreSQL (``loadtests.audit_checks``):
- units sold never exceed stock received (counters, and a recount of committed holds);
- counters equal a recount of reservations (sold = committed, reserved = held);
- replaying inventory_journal gives each reservation's state and the counters, and each
  change's available units before it are those the previous one left (nothing left out);
- every paid order charged exactly once: a payment reference, distinct, its lines'
  reservations committed to it; no stock committed to a failed or missing order; at most
  one succeeded attempt per order if a ``payment_attempts`` table exists;
- no reservation outlived its expiry (held past it by more than ``--grace-s``, or committed
  after it);
- every acknowledged add-to-cart (and paid checkout) in the load test's JSONL journals is
  recorded as such.

Prints a summary; exits 0 when every check passed, 1 on any violation, 2 if it could not
run. Run it while the stack still runs: a stopped stack cannot expire holds, and restarting
it releases the overdue ones first (recovery), which is what the expiry check expects.

Database: ``--database-url``, else MATCHDAY_DATABASE_URL, else the running stack's
``stack.json`` in MATCHDAY_DATA_DIR (``.data``). Acknowledgements: ``--acks`` files or
directories, else MATCHDAY_LT_ACK_DIR (``loadtests/out/acks``) when it exists.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg

from loadtests import audit_checks as checks
from loadtests.acks import ack_files, read_acks

SHOWN = 10


def run_audit(
    database_url: str,
    ack_paths: Sequence[Path] = (),
    scope: checks.Scope | None = None,
    grace_s: float = 60.0,
) -> list[checks.Finding]:
    """Every check against ``database_url``; the caller decides what a violation means."""
    scope = scope or checks.Scope()
    acks = list(read_acks(ack_paths))
    with psycopg.connect(database_url) as conn:
        conn.read_only = True
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            return [
                checks.stock_never_oversold(conn, scope),
                checks.counters_match_reservations(conn, scope),
                checks.journal_matches_counters(conn, scope),
                checks.paid_orders_charged_once(conn, scope),
                checks.reservations_expired_in_time(conn, scope, grace_s),
                checks.acknowledged_are_recorded(conn, acks),
            ]


def summary(findings: list[checks.Finding], shown: int = SHOWN) -> str:
    lines = []
    for f in findings:
        status = "ok  " if f.ok else "FAIL"
        counted = f"{f.checked:,} {f.unit}"
        if f.violations:
            counted += f", {len(f.violations)} violation(s)"
        lines.append(f"  {status}  {f.title:<60} {counted}")
        lines.extend(f"          - {v}" for v in f.violations[:shown])
        if len(f.violations) > shown:
            lines.append(f"          ... and {len(f.violations) - shown} more")
        lines.extend(f"          ({n})" for n in f.notes)
    bad = [f for f in findings if not f.ok]
    total = sum(len(f.violations) for f in bad)
    lines.append(
        f"PASSED: {len(findings)} checks, no violations"
        if not bad
        else f"FAILED: {total} violation(s) in {len(bad)} of {len(findings)} checks"
    )
    return "\n".join(lines)


def resolve_database_url(explicit: str | None) -> str:
    if explicit:
        return explicit
    if os.environ.get("MATCHDAY_DATABASE_URL"):
        return os.environ["MATCHDAY_DATABASE_URL"]
    from matchday.ops.stack_state import load_state
    from matchday.settings import Settings

    state = load_state(Settings()) or {}
    url = state.get("database_url")
    if not url:
        raise SystemExit(
            "no database: pass --database-url, set MATCHDAY_DATABASE_URL, or start the stack"
            " (`matchday run`) so its stack.json says where PostgreSQL is"
        )
    return str(url)


def _redacted(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m loadtests.audit", description=__doc__.split("\n")[0]
    )
    p.add_argument("--database-url", help="default: MATCHDAY_DATABASE_URL or the stack's")
    p.add_argument("--acks", nargs="*", type=Path, help="ack JSONL files or directories")
    p.add_argument("--no-acks", action="store_true", help="skip the acknowledgement check")
    p.add_argument("--sku-like", default="%", help="only SKUs matching this LIKE pattern")
    p.add_argument("--grace-s", type=float, default=60.0,
                   help="how late an expiry may be applied before it is a violation")  # fmt: skip
    p.add_argument("--show", type=int, default=SHOWN, help="violations shown per check")
    args = p.parse_args(argv)

    url = resolve_database_url(args.database_url)
    if args.no_acks:
        paths: list[Path] = []
    elif args.acks:
        paths = list(args.acks)
    else:
        default = Path(os.environ.get("MATCHDAY_LT_ACK_DIR", "loadtests/out/acks"))
        paths = [default] if default.exists() else []
    scope = checks.Scope(args.sku_like)
    print(f"matchday audit of {_redacted(url)} ({scope.describe()}; "
          f"{len(ack_files(paths))} ack file(s))")  # fmt: skip
    try:
        findings = run_audit(url, paths, scope, args.grace_s)
    except (psycopg.Error, OSError, ValueError) as exc:
        print(f"audit could not run: {exc}", file=sys.stderr)
        return 2
    print(summary(findings, args.show))
    return 0 if all(f.ok for f in findings) else 1


if __name__ == "__main__":
    sys.exit(main())
