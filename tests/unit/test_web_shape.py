"""matchday/web stays readable: no function over 60 lines, no formatter opt-outs but tables.

A route module grows by one route at a time, so a builder that declares every route inline
grows without anyone deciding it should (issue 14 found one of 149 lines). Each resource gets
a router factory of its own instead (matchday/web/base.py: ``router``, ``include``).
"""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

import matchday.web

WEB = Path(matchday.web.__file__).parent
MAX_LINES = 60
# `# fmt: skip` is for hand-aligned tables only: (file, the line's stripped text) allowed.
FMT_SKIP_ALLOWED: frozenset[tuple[str, str]] = frozenset()


def _sources() -> list[Path]:
    found = sorted(WEB.rglob("*.py"))
    assert len(found) > 20, f"matchday/web not found where expected: {WEB}"
    return found


def long_functions(source: str, limit: int = MAX_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length in lines) of each function or method longer than ``limit``,
    decorators included, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - first + 1
            if length > limit:
                found.append((node.name, first, length))
    return found


def fmt_skips(source: str) -> list[tuple[int, str]]:
    """(line, stripped text) of each line carrying a ``# fmt: skip`` comment (comments only:
    the words in a string are not one)."""
    found = []
    lines = source.splitlines()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT and "fmt: skip" in token.string:
            row = token.start[0]
            found.append((row, lines[row - 1].strip()))
    return found


def test_no_function_in_matchday_web_is_over_60_lines() -> None:
    over = [
        f"{path.relative_to(WEB)}:{line} {name} ({length} lines)"
        for path in _sources()
        for name, line, length in long_functions(path.read_text())
    ]
    assert over == [], "split these into a router per resource or small helpers:\n" + "\n".join(
        over
    )


def test_fmt_skip_in_matchday_web_only_on_allowed_tables() -> None:
    found = [
        f"{path.relative_to(WEB)}:{line} {text}"
        for path in _sources()
        for line, text in fmt_skips(path.read_text())
        if (str(path.relative_to(WEB)), text) not in FMT_SKIP_ALLOWED
    ]
    assert found == [], "let ruff format these lines:\n" + "\n".join(found)


def test_the_checks_catch_what_they_are_for() -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_LINES))
    long = f"@decorator\ndef grown():\n{body}\n"
    assert long_functions(long) == [("grown", 1, MAX_LINES + 2)]
    assert long_functions(f"def fits():\n{body[: body.rindex(chr(10))]}\n") == []
    nested = f"def outer():\n    def inner():\n{body.replace('    ', '        ')}\n"
    assert [name for name, _, _ in long_functions(nested)] == ["outer", "inner"]
    skipped = 'x = [1,2]  # fmt: skip\ny = "# fmt: skip"\n'
    assert fmt_skips(skipped) == [(1, "x = [1,2]  # fmt: skip")]
