"""The strict JSON body parser: one meaning per body, or a refusal that names the problem."""

from __future__ import annotations

import json

import pytest

from matchday.web.strict_json import AmbiguousJSON, loads


def test_plain_utf8_json_is_read_as_python_reads_it() -> None:
    body = '{"sku": "KIT-M", "qty": 2, "note": "naïve ☃", "nested": [{"a": 1.5}]}'.encode()
    assert loads(body) == json.loads(body)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"sku": "X", "qty": 1, "qty": 100}', "duplicate key 'qty'"),
        (b'{"a": {"b": 1, "b": 2}}', "duplicate key 'b'"),
        (b'[{"x": 1}, {"y": 1, "y": 1}]', "duplicate key 'y'"),
        (b'\xef\xbb\xbf{"qty": 1}', "byte-order mark"),
        ('{"qty": 1}'.encode("utf-16"), "not UTF-8"),
        ('{"qty": 1}'.encode("utf-16-le"), "NUL byte"),
        ('{"qty": 1}'.encode("utf-32"), "not UTF-8"),
        (b'{"note": "caf\xe9"}', "not UTF-8"),
        (b'{"qty": NaN}', "NaN is not a JSON number"),
        (b'{"qty": -Infinity}', "-Infinity is not a JSON number"),
        (b'{"qty": 1e400}', "too large for a float"),
        (b'{"qty": ' + b"9" * 31 + b"}", "longer than 30 digits"),
        (b'{"qty": ' + b"9" * 5000 + b"}", "longer than 30 digits"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_ambiguous_bodies_are_refused_with_the_reason(body: bytes, problem: str) -> None:
    with pytest.raises(AmbiguousJSON) as caught:
        loads(body)
    assert problem in caught.value.msg
    assert isinstance(caught.value, json.JSONDecodeError)  # what FastAPI turns into a 422


def test_plain_syntax_errors_stay_json_decode_errors() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads(b'{"qty": 1,}')


def test_a_duplicate_key_is_named_but_never_echoed_at_length() -> None:
    key = "k" * 500
    with pytest.raises(AmbiguousJSON) as caught:
        loads(json.dumps({key: 1}).encode()[:-1] + f', "{key}": 2}}'.encode())
    assert len(caught.value.msg) < 80
