"""Two commits' benchmark rounds, interleaved: ``python -m bench.ab BASE [HEAD]``.

Sequential runs of three rounds each could not resolve a change of 0.5-2 µs per reserve:
the machine's speed drifted 8-15% within a session (docs/performance-history.md, "2026-12-05,
night"). Rounds that alternate (A, B, A, B, ...) see the same drift on both sides, so the
difference of their medians is the change's ("2026-12-05, late morning": 33.5 against
31.5 µs, runs 33.2-33.6 against 31.2-32.5).

Each side runs from a git worktree of its commit, with this interpreter and the same
benchmark arguments (after ``--``); without HEAD, side B is this working tree as it is,
uncommitted changes included. Every round is one ``--runs 1`` run of the benchmark, its JSON
kept in ``--out``. Printed: for each concurrency and system, the medians of A and B, B/A,
and each round's server total.

    python -m bench.ab 6e7b555                               # bench.inventory, 3 rounds each
    python -m bench.ab 6e7b555 9e742ce --rounds 5 -- --concurrency 64
    python -m bench.ab 6e7b555 --bench http -- --ingress haproxy --concurrency 16 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TOTAL = "server total"
MIN_SHOWN_US = 0.5  # a role under this on both sides is left out of the summary
# Per benchmark: where a run's figures are, and the name of its throughput.
_LAYOUT = {"inventory": ("reserves_per_s", "reserves/s"), "http": ("requests_per_s", "req/s")}

Figures = dict[tuple[str, str], dict[str, float]]  # (concurrency, system) -> name -> value
RunRound = Callable[[Path, Path], None]  # (tree, json path): one round, or raise


def figures(bench: str, doc: dict[str, Any]) -> Figures:
    """One round's throughput, p99 and net CPU per operation by role, per (c, system)."""
    rate, _ = _LAYOUT[bench]
    phases = doc["hot_sku"]["runs"][0] if bench == "inventory" else doc["runs"][0]["phases"]
    out: Figures = {}
    for c, systems in phases.items():
        for system, f in systems.items():
            if not isinstance(f, dict) or rate not in f:
                continue
            row = {"rate": float(f[rate]), "p99 ms": float(f["p99_ms"])}
            row.update((k, float(v)) for k, v in f.get("cpu_us_per_op_net", {}).items())
            out[(c, system)] = row
    return out


def summary(bench: str, a: Sequence[Figures], b: Sequence[Figures]) -> list[str]:
    """The medians of both sides, per (concurrency, system) that every round measured."""
    _, rate_name = _LAYOUT[bench]
    lines = []
    keys = set(a[0]) if a else set()
    for rounds in (*a, *b):
        keys &= set(rounds)
    for key in sorted(keys, key=lambda k: (int(k[0]), k[1])):
        c, system = key
        lines.append(f"c={c} {system}:")
        names = ["rate", "p99 ms", TOTAL]
        names += sorted(n for n in a[0][key] if n not in names and n in b[0][key])
        for name in names:
            ma = statistics.median(r[key].get(name, 0.0) for r in a)
            mb = statistics.median(r[key].get(name, 0.0) for r in b)
            if max(ma, mb) < MIN_SHOWN_US and name not in ("rate", "p99 ms", TOTAL):
                continue
            ratio = f"{mb / ma:5.2f}x" if ma else "    -"
            lines.append(f"  {_label(name, rate_name):<28} A {ma:>10,.1f}   B {mb:>10,.1f}"
                         f"   B/A {ratio}")  # fmt: skip
        lines.append(f"  rounds' {TOTAL}: A {_totals(a, key)} | B {_totals(b, key)}")
    return lines


def _label(name: str, rate_name: str) -> str:
    if name == "rate":
        return rate_name
    return name if name == "p99 ms" else f"{name} µs"


def _totals(side: Sequence[Figures], key: tuple[str, str]) -> str:
    return " ".join(f"{r[key].get(TOTAL, 0.0):.1f}" for r in side)


@contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """A detached worktree of ``commit``, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="matchday-ab-"))
    subprocess.run(  # noqa: S603 - git, with the commit as one argument
        ["git", "-C", str(REPO), "worktree", "add", "--force", "--detach", str(path), commit],  # noqa: S607
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(  # noqa: S603 - git with fixed arguments
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)],  # noqa: S607
            check=False, capture_output=True,
        )  # fmt: skip


def subprocess_round(bench: str, extra: Sequence[str]) -> RunRound:
    def run(tree: Path, out: Path) -> None:
        log = out.with_suffix(".log")
        cmd = [sys.executable, "-m", f"bench.{bench}", "--runs", "1", "--json", str(out), *extra]
        env = {**os.environ, "PYTHONPATH": str(tree)}
        with log.open("w") as f:
            done = subprocess.run(  # noqa: S603 - this interpreter, our module
                cmd, cwd=tree, env=env, stdout=f, stderr=subprocess.STDOUT
            )
        if done.returncode != 0 or not out.exists():
            tail = log.read_text().splitlines()[-15:]
            raise RuntimeError(f"a round failed ({log}):\n" + "\n".join(tail))

    return run


def interleave(
    bench: str, trees: tuple[Path, Path], rounds: int, out: Path, run: RunRound,
    say: Callable[[str], None] = print,
) -> tuple[list[Figures], list[Figures]]:  # fmt: skip
    """Rounds A, B, A, B, ...; each side's figures in its rounds' order."""
    sides: tuple[list[Figures], list[Figures]] = ([], [])
    started = time.monotonic()
    for i in range(1, rounds + 1):
        for side, (name, tree) in enumerate(zip("AB", trees, strict=True)):
            path = out / f"{name}{i}.json"
            say(f"[{time.monotonic() - started:7.1f}s] round {i} of {rounds}, {name} ({tree}) ...")
            run(tree, path)
            got = figures(bench, json.loads(path.read_text()))
            sides[side].append(got)
            totals = ", ".join(
                f"c={c} {s} {f.get(TOTAL, 0.0):.1f} µs"
                for (c, s), f in sorted(got.items(), key=lambda kv: (int(kv[0][0]), kv[0][1]))
            )
            say(f"           {name}{i}: {totals}")
    return sides


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in args_in:
        cut = args_in.index("--")
        args_in, extra = args_in[:cut], args_in[cut + 1 :]
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n")[0])
    p.add_argument("base", help="commit for side A")
    p.add_argument("head", nargs="?", help="commit for side B (default: this working tree)")
    p.add_argument("--bench", choices=sorted(_LAYOUT), default="inventory")
    p.add_argument("--rounds", type=int, default=3, help="rounds per side (3)")
    p.add_argument("--out", type=Path, help="where the rounds' JSON and logs go (a temp dir)")
    args = p.parse_args(args_in)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    out = args.out or Path(tempfile.mkdtemp(prefix="matchday-ab-out-"))
    out.mkdir(parents=True, exist_ok=True)
    print(f"bench.{args.bench}: A = {args.base}, B = {args.head or 'this working tree'}, "
          f"{args.rounds} rounds each, interleaved; rounds' files in {out}")  # fmt: skip
    with worktree(args.base) as a_tree:
        if args.head:
            with worktree(args.head) as b_tree:
                a, b = interleave(args.bench, (a_tree, b_tree), args.rounds, out,
                                  subprocess_round(args.bench, extra))  # fmt: skip
        else:
            a, b = interleave(args.bench, (a_tree, REPO), args.rounds, out,
                              subprocess_round(args.bench, extra))  # fmt: skip
    print("\n".join(["", f"medians of {args.rounds} rounds each:", *summary(args.bench, a, b)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
