"""Supplier messages and feeds into lines: every malformed line named, nothing half-read."""

from __future__ import annotations

import json

from matchday.suppliers.model import DELTA, LEVEL, FeedLine, FeedRejected
from matchday.suppliers.parsing import parse_feed, parse_message

MAX = 1_000


def message(lines: list[object], **extra: object) -> bytes:
    return json.dumps({"message_id": "m-1", "lines": lines, **extra}).encode()


def test_a_message_with_levels_and_deltas_is_read_line_by_line() -> None:
    parsed = parse_message(
        message([{"sku": "ADI 42/L", "level": 12}, {"sku": "B", "delta": -3}], as_of=1.8e9), MAX
    )
    assert parsed.ok and parsed.message_id == "m-1" and parsed.as_of == 1.8e9
    assert parsed.lines == [FeedLine(1, "ADI 42/L", LEVEL, 12), FeedLine(2, "B", DELTA, -3)]


def test_a_lying_message_is_refused_whole_with_every_problem_named() -> None:
    parsed = parse_message(
        message(
            [
                {"sku": "A", "level": -1},  # negative
                {"sku": "B", "level": 10**9},  # absurd
                {"sku": "C", "level": 4},
                {"sku": "C", "level": 4},  # duplicate
                {"sku": "D", "level": 1.5},
                {"sku": "E", "level": True},
                {"sku": "F", "delta": 0},
                {"sku": "G", "level": 1, "delta": 1},
                {"sku": "", "level": 1},
                "H,1",
            ]
        ),
        MAX,
    )
    assert not parsed.ok and parsed.lines == []
    by_line = dict(parsed.errors)
    assert "negative" in by_line[1]
    assert "beyond this supplier's bound of 1000" in by_line[2]
    assert "again (first on line 3)" in by_line[4]
    assert "whole number" in by_line[5] and "whole number" in by_line[6]
    assert "must not be 0" in by_line[7]
    assert "exactly one of level or delta" in by_line[8]
    assert "sku must be" in by_line[9]
    assert "must be an object" in by_line[10]
    assert 3 not in by_line
    text = str(FeedRejected(parsed.errors))
    assert text.startswith("feed rejected, nothing applied (9 problems)")


def test_a_message_needs_an_id_json_and_no_strange_fields() -> None:
    assert parse_message(b"{not json", MAX).errors[0][1].startswith("not JSON")
    assert "not UTF-8" in parse_message(b"\xff\xfe", MAX).errors[0][1]
    assert parse_message(b"[]", MAX).errors == [(0, "the message must be a JSON object")]
    no_id = parse_message(json.dumps({"lines": [{"sku": "A", "level": 1}]}).encode(), MAX)
    assert not no_id.ok and "message_id" in no_id.errors[0][1]
    nan = parse_message(b'{"message_id": "m", "lines": [{"sku": "A", "level": NaN}]}', MAX)
    assert not nan.ok
    extra = parse_message(message([{"sku": "A", "level": 1}], price=3), MAX)
    assert extra.errors == [(0, "unknown fields: price")]
    empty = parse_message(message([]), MAX)
    assert empty.errors == [(0, "lines must be a non-empty list")]
    many = parse_message(
        message([{"sku": f"S{i}", "level": 1} for i in range(5)]), MAX, max_lines=4
    )
    assert many.errors == [(0, "more than 4 lines")]


def test_a_csv_feed_of_levels_or_deltas_is_read_with_its_file_lines() -> None:
    levels = parse_feed(b'\xef\xbb\xbfsku,level\r\nA,3\r\n"B,1",0\r\n', "csv", MAX)
    assert levels.ok
    assert levels.lines == [FeedLine(2, "A", LEVEL, 3), FeedLine(3, "B,1", LEVEL, 0)]
    deltas = parse_feed(b"SKU,Delta\nA,-2\n", "csv", MAX)
    assert deltas.lines == [FeedLine(2, "A", DELTA, -2)]


def test_a_bad_csv_feed_names_its_lines() -> None:
    assert parse_feed(b"sku,qty\nA,1\n", "csv", MAX).errors == [
        (1, "the header must be sku,level or sku,delta")
    ]
    bad = parse_feed(b"sku,level\nA,x\nB,-1\nA,2\nC\n\nD,99999\n", "csv", MAX)
    by_line = dict(bad.errors)
    assert "whole number" in by_line[2] and "negative" in by_line[3]
    assert "again (first on line 2)" in by_line[4]
    assert "expected 2 columns" in by_line[5] and "expected 2 columns" in by_line[6]
    assert "bound" in by_line[7]
    assert bad.lines == []
    assert parse_feed(b"sku,level\n", "csv", MAX).errors == [(0, "no lines after the header")]
    assert parse_feed(b'sku,level\n"A,1\n', "csv", MAX).errors[0][1].startswith("malformed CSV")
    assert parse_feed(b"sku,level\nA,1\nB,1\nC,1\n", "csv", MAX, max_lines=2).errors == [
        (0, "more than 2 lines")
    ]


def test_a_json_feed_may_be_a_bare_list() -> None:
    parsed = parse_feed(json.dumps([{"sku": "A", "level": 2}]).encode(), "json", MAX)
    assert parsed.lines == [FeedLine(1, "A", LEVEL, 2)] and parsed.as_of is None
    wrapped = parse_feed(
        json.dumps({"as_of": 1.7e9, "lines": [{"sku": "A", "delta": 5}]}).encode(), "json", MAX
    )
    assert wrapped.lines == [FeedLine(1, "A", DELTA, 5)] and wrapped.as_of == 1.7e9
    assert not parse_feed(json.dumps({"message_id": "x", "lines": []}).encode(), "json", MAX).ok


def test_json_with_two_meanings_is_refused_as_every_app_refuses_it() -> None:
    twice = b'{"message_id": "m-1", "lines": [{"sku": "A", "level": 1, "level": 900}]}'
    assert "duplicate key 'level'" in parse_message(twice, MAX).errors[0][1]
    bom = b"\xef\xbb\xbf" + message([{"sku": "A", "level": 1}])
    assert not parse_message(bom, MAX).ok  # a signed push is plain UTF-8
    feed = parse_feed(b'\xef\xbb\xbf[{"sku": "A", "level": 1}]', "json", MAX)
    assert feed.ok  # a downloaded export may carry a byte-order mark
    assert not parse_message(b'{"message_id": "m", "lines": [{"sku": "A", "level": NaN}]}', MAX).ok
