"""What a running stack burns with no traffic, per process role (ADR 0030).

    matchday run &                   # wait for "matchday is running"
    python -m bench.idle [--seconds 40] [--settle 10] [--pid PID]

Reads the stack's root process from its state file (``MATCHDAY_DATA_DIR``), waits
``--settle`` seconds, then samples every process under it twice, ``--seconds`` apart, and
prints the cores each role used, busiest first, and their total. Send no traffic meanwhile.
"""

from __future__ import annotations

import argparse
import sys
import time

from bench.costs import idle_window
from matchday.ops.cpu_roles import FOREIGN, MACHINE, STEAL, cpu_sample
from matchday.ops.stack_state import load_state
from matchday.settings import Settings

MACHINE_WIDE = {FOREIGN, STEAL, MACHINE}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.idle", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=40.0, help="the idle window (40)")
    p.add_argument("--settle", type=float, default=10.0, help="seconds to wait first (10)")
    p.add_argument("--pid", type=int, help="the stack's root process (default: its state file)")
    args = p.parse_args(argv)
    pid = args.pid or (load_state(Settings()) or {}).get("pid")
    if not pid:
        print("no running stack found: start `matchday run`, or pass --pid", file=sys.stderr)
        return 2
    print(f"settling {args.settle:g} s, then {args.seconds:g} s idle ...", file=sys.stderr)
    time.sleep(args.settle)
    cores = idle_window(lambda: cpu_sample({"auto": int(pid)}), args.seconds)["cores"]
    roles = {r: v for r, v in cores.items() if r not in MACHINE_WIDE}
    for role, v in sorted(roles.items(), key=lambda kv: -kv[1]):
        print(f"{role:32} {v:6.3f} cores")
    print(f"{'the stack':32} {sum(roles.values()):6.3f} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
