"""Stock import validation: every kind of bad row is reported, with its line, and nothing is
applied; the pure parts of the import (ids, error shape) without PostgreSQL."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from matchday.admin.records import ImportRow
from matchday.admin.stock_import import (
    ImportLimits,
    ImportRejected,
    StockImporter,
    import_id_for,
    parse_import,
    request_id_for,
    validate_import,
)
from matchday.domain.errors import InvalidInput, MatchdayError
from matchday.domain.ids import ID_RE
from matchday.inventory.commands import Policy

KNOWN = {"JERSEY-M", "JERSEY-L", "BALL-5", "BOOTS-42"}
POLICY = Policy(max_restock=500, max_on_hand=10_000)


def rejected(data: str | bytes, known: set[str] = KNOWN, **kw: Any) -> list[tuple[int, str]]:
    with pytest.raises(ImportRejected) as info:
        validate_import(data, known, POLICY, **kw)
    return info.value.errors


class RecordingWriter:
    """Would record every mutation; validation must never get that far."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str, int]] = []

    async def restock(self, request_id: str, sku: str, qty: int) -> object:
        self.calls.append(("restock", request_id, sku, qty))
        return None

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> object:
        self.calls.append(("set", request_id, sku, units))
        return None


def test_a_valid_file_gives_one_row_per_line_with_its_line_number() -> None:
    rows = validate_import(
        "sku,action,quantity\nJERSEY-M,restock,40\nBALL-5,set,0\r\nBOOTS-42,set,10000\n",
        KNOWN,
        POLICY,
    )
    assert rows == [
        ImportRow(2, "JERSEY-M", "restock", 40),
        ImportRow(3, "BALL-5", "set", 0),
        ImportRow(4, "BOOTS-42", "set", 10_000),
    ]


def test_an_excel_byte_order_mark_before_the_header_is_accepted() -> None:
    rows = validate_import(b"\xef\xbb\xbfsku,action,quantity\nJERSEY-M,restock,1\n", KNOWN, POLICY)
    assert [r.sku for r in rows] == ["JERSEY-M"]


def test_every_bad_row_is_reported_with_its_line_in_one_error() -> None:
    data = (
        "sku,action,quantity\n"
        "JERSEY-M,restock,5\n"  # 2 fine
        "bad sku!,restock,5\n"  # 3 SKU syntax
        "NOPE-1,restock,5\n"  # 4 unknown SKU
        "JERSEY-L,sell,5\n"  # 5 unknown action
        "BALL-5,restock,-3\n"  # 6 negative
        "BOOTS-42,restock,2.5\n"  # 7 not whole
        "JERSEY-M,set,7\n"  # 8 duplicate of line 2
        "\n"  # 9 blank line
        "JERSEY-L,restock,1,extra\n"  # 10 extra column
        ",restock,1\n"  # 11 blank SKU
        "JERSEY-L,restock,\n"  # 12 blank quantity
    )
    errors = rejected(data)
    lines = [line for line, _ in errors]
    assert lines == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    text = dict(errors)
    assert "not 1-64 letters" in text[3]
    assert "unknown SKU NOPE-1" in text[4]
    assert "'restock' or 'set'" in text[5]
    assert "whole number" in text[6] and "'-3'" in text[6]
    assert "whole number" in text[7]
    assert "duplicate SKU JERSEY-M, first on line 2" in text[8]
    assert text[9] == "blank line"
    assert "found 4" in text[10]
    assert text[11] == "sku is blank"
    assert "whole number, not ''" in text[12]


def test_one_row_may_have_several_problems_and_all_are_listed() -> None:
    errors = rejected("sku,action,quantity\nbad sku,remove,x\n")
    assert [line for line, _ in errors] == [2, 2, 2]


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        ("JERSEY-M,restock,0", "restock quantity must be between 1 and 500"),
        ("JERSEY-M,restock,501", "restock quantity must be between 1 and 500"),
        ("JERSEY-M,set,10001", "set quantity must be between 0 and 10000"),
        ("JERSEY-M,restock, 5", "whole number"),  # no padding, no sign, no exponent
        ("JERSEY-M,restock,+5", "whole number"),
        ("JERSEY-M,restock,1e3", "whole number"),
        ("JERSEY-M,restock,١٢", "whole number"),  # Arabic-Indic digits pass str.isdigit
        ("JERSEY-M,restock,9999999999999", "whole number"),
        ("JERSEY-M,RESTOCK,5", "'restock' or 'set'"),
        (" JERSEY-M,restock,5", "not 1-64 letters"),
        ("JERSEY-M", "expected 3 columns"),
    ],
)
def test_quantities_and_actions_are_checked_strictly(row: str, needle: str) -> None:
    errors = rejected(f"sku,action,quantity\n{row}\n")
    assert errors[0][0] == 2
    assert any(needle in message for _, message in errors), errors


@pytest.mark.parametrize(
    "header",
    ["sku,qty,action", "SKU,action,quantity", "sku,action,quantity,note", "sku;action;quantity"],
)
def test_the_header_must_be_exact(header: str) -> None:
    assert rejected(f"{header}\nJERSEY-M,restock,1\n") == [
        (1, "header must be exactly sku,action,quantity")
    ]


def test_an_empty_file_and_a_header_alone_are_refused() -> None:
    assert rejected("") == [(0, "empty file")]
    assert rejected("sku,action,quantity\n") == [(0, "no rows after the header")]


def test_the_file_size_and_row_count_are_bounded() -> None:
    small = ImportLimits(max_bytes=64, max_rows=2)
    big = "sku,action,quantity\n" + "JERSEY-M,restock,1\n" * 3
    assert rejected(big, limits=small) == [(0, "file larger than 64 bytes")]
    three = "sku,action,quantity\nJERSEY-M,restock,1\nJERSEY-L,restock,1\nBALL-5,set,1\n"
    assert rejected(three, limits=ImportLimits(max_rows=2)) == [(0, "more than 2 rows")]


def test_text_that_is_not_utf8_or_not_csv_is_refused() -> None:
    assert rejected(b"sku,action,quantity\nJERSEY-M,restock,\xff\n")[0][1].startswith("not UTF-8")
    errors = rejected('sku,action,quantity\n"JERSEY-M,restock,1\n')
    assert "malformed CSV" in errors[-1][1]


def test_the_parser_alone_never_raises_and_counts_the_data_lines() -> None:
    parsed = parse_import("sku,action,quantity\nJERSEY-M,restock,1\nbad,,\n", POLICY)
    assert parsed.data_lines == 2
    assert [r.sku for r in parsed.rows] == ["JERSEY-M"]
    assert [line for line, _ in parsed.errors] == [3, 3]


class RejectionOnlyRepo:
    """Just enough of AdminRepository for an import that fails validation."""

    def __init__(self) -> None:
        self.rejected: list[tuple[str, int, list[Any]]] = []
        self.started = False

    async def get_import(self, import_id: str) -> None:
        return None

    async def existing_skus(self, skus: list[str]) -> set[str]:
        return KNOWN & set(skus)

    async def save_rejected(
        self, import_id: str, key_id: Any, sha: str, n: int, errors: list[Any], at: float
    ) -> None:
        self.rejected.append((import_id, n, errors))

    async def start_import(self, *args: Any) -> bool:
        self.started = True
        return True


async def test_a_rejected_file_applies_nothing_through_the_writer() -> None:
    writer, repo = RecordingWriter(), RejectionOnlyRepo()
    importer = StockImporter(repo, writer, POLICY)  # type: ignore[arg-type]
    data = "sku,action,quantity\nJERSEY-M,restock,5\nJERSEY-L,restock,0\nGHOST-1,set,3\n"
    with pytest.raises(ImportRejected) as info:
        await importer.run(data)
    assert [line for line, _ in info.value.errors] == [3, 4]
    assert writer.calls == []
    assert not repo.started, "a rejected file must not even be planned"
    [(_, rows, errors)] = repo.rejected
    assert rows == 3 and [e["line"] for e in errors] == [3, 4]


def test_the_rejection_is_a_typed_error_that_pickles_and_lists_every_line() -> None:
    error = ImportRejected([(3, "unknown SKU X"), (0, "more than 2 rows")])
    assert isinstance(error, MatchdayError)
    assert (error.code, error.http_status) == ("invalid_import", 422)
    again = pickle.loads(pickle.dumps(error))
    assert again.errors == error.errors and str(again) == str(error)
    assert "line 3: unknown SKU X" in str(error)
    assert error.to_dict()["errors"] == [
        {"line": 3, "message": "unknown SKU X"},
        {"line": 0, "message": "more than 2 rows"},
    ]


def test_a_long_list_of_errors_is_shortened_in_the_message_but_complete_in_the_record() -> None:
    data = "sku,action,quantity\n" + "".join(f"S-{i},restock,1\n" for i in range(80))
    with pytest.raises(ImportRejected) as info:
        validate_import(data, set(), POLICY)
    assert len(info.value.errors) == 80
    assert "and 30 more" in str(info.value)
    assert len(info.value.to_dict()["errors"]) == 80


def test_import_ids_come_from_the_idempotency_key_or_else_the_content() -> None:
    assert import_id_for("a" * 64, "order-7") == import_id_for("b" * 64, "order-7")
    assert import_id_for("a" * 64) != import_id_for("b" * 64)
    assert import_id_for("a" * 64) != import_id_for("a" * 64, "order-7")
    rid = request_id_for(import_id_for("a" * 64, "k"), 10_001)
    assert ID_RE.fullmatch(rid), "engine request ids must pass the engine's own check"
    with pytest.raises(InvalidInput):
        import_id_for("a" * 64, "has spaces in it")
