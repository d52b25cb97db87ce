"""Catalogue input models refuse whatever a client should not be able to send."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from matchday.catalog.demo import demo_products
from matchday.catalog.models import (
    MAX_PRICE_CENTS,
    CategoryIn,
    ListQuery,
    ProductIn,
    ProductOut,
    ProductPatch,
    ProductRecord,
    VariantIn,
)
from matchday.demo import demo_stock
from matchday.inventory.commands import check_sku


def product(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "slug": "jersey-arg-home",
        "name": "Argentina Home Jersey 2026",
        "category": "jerseys",
        "price_cents": 8999,
        "image_url": "/static/img/jersey-arg-home.svg",
        "variants": [{"sku": "JERSEY-ARG-HOME-M", "size": "M", "initial_stock": 10}],
    }
    body.update(overrides)
    return body


def test_a_well_formed_product_is_accepted_with_defaults() -> None:
    p = ProductIn.model_validate(product())
    assert p.currency == "EUR"
    assert p.variants[0].initial_stock == 10
    assert p.tags == []


@pytest.mark.parametrize("sku", ["JERSEY-ARG-HOME-M", "BOOTS-STRIKER-42", "BALL-MATCH-5"])
def test_the_demo_style_skus_are_accepted(sku: str) -> None:
    assert VariantIn(sku=sku).sku == sku


def test_every_demo_sku_is_accepted_by_both_the_catalogue_and_the_engine() -> None:
    for row in demo_stock():
        assert VariantIn(sku=row.sku).sku == check_sku(row.sku)


@pytest.mark.parametrize(
    "sku",
    ["", "jersey-arg-home-m", "-LEADING-DASH", "HAS SPACE", "SEMI;COLON", "A" * 65, "ÄRG-1", "A.B"],
)
def test_malformed_skus_are_refused(sku: str) -> None:
    with pytest.raises(ValidationError):
        VariantIn(sku=sku)


@pytest.mark.parametrize(
    "model, body",
    [
        (ProductIn, product(colour="red")),
        (VariantIn, {"sku": "BALL-MATCH-5", "stock": 3}),
        (ProductPatch, {"price": 100}),
        (ListQuery, {"sort_by": "price"}),
        (CategoryIn, {"slug": "balls", "name": "Balls", "hidden": True}),
    ],
)
def test_unknown_fields_are_refused_on_every_input_model(model: Any, body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate(body)


@pytest.mark.parametrize("price", [-1, MAX_PRICE_CENTS + 1, 10**30, 12.5, "8999", True])
def test_prices_must_be_whole_cents_between_zero_and_the_maximum(price: object) -> None:
    with pytest.raises(ValidationError):
        ProductIn.model_validate(product(price_cents=price))
    with pytest.raises(ValidationError):
        VariantIn.model_validate({"sku": "BALL-MATCH-5", "price_cents": price})


def test_a_free_product_and_the_maximum_price_are_both_accepted() -> None:
    assert ProductIn.model_validate(product(price_cents=0)).price_cents == 0
    assert ProductIn.model_validate(product(price_cents=MAX_PRICE_CENTS)).price_cents > 0


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "x" * 121),
        ("name", "   "),
        ("name", "Bell\x07"),
        ("name", "two\nlines"),
        ("description", "d" * 4001),
        ("description", "nul\x00byte"),
        ("team", "t" * 41),
        ("tags", ["a"] * 11),
        ("tags", ["UPPER"]),
        ("slug", "Jersey-Arg"),
        ("slug", "s" * 65),
        ("slug", "../etc"),
        ("category", "no spaces"),
        ("currency", "eur"),
        ("currency", "EURO"),
        ("image_url", "javascript:alert(1)"),
        ("image_url", "//evil.example/x.svg"),
        ("image_url", "http://plain.example/x.svg"),
        ("image_url", "/static/" + "a" * 500),
        ("featured_rank", -1),
        ("per_customer_limit", 0),
        ("variants", []),
    ],
)
def test_out_of_bounds_product_fields_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        ProductIn.model_validate(product(**{field: value}))


def test_an_https_image_and_a_multiline_description_are_accepted() -> None:
    p = ProductIn.model_validate(
        product(image_url="https://cdn.example.com/img/a.svg", description="One.\nTwo.")
    )
    assert p.description == "One.\nTwo."


def test_too_many_variants_are_refused() -> None:
    many = [{"sku": f"SKU-{i}", "size": str(i)} for i in range(101)]
    with pytest.raises(ValidationError):
        ProductIn.model_validate(product(variants=many))


@pytest.mark.parametrize(
    "variant",
    [
        {"sku": "BALL-MATCH-5", "initial_stock": -1},
        {"sku": "BALL-MATCH-5", "initial_stock": 1_000_001},
        {"sku": "BALL-MATCH-5", "size": "x" * 17},
        {"sku": "BALL-MATCH-5", "colour": "c" * 33},
        {"sku": "BALL-MATCH-5", "position": 10_001},
    ],
)
def test_out_of_bounds_variant_fields_are_refused(variant: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        VariantIn.model_validate(variant)


def test_two_variants_with_the_same_sku_are_refused() -> None:
    twice = [{"sku": "BALL-MATCH-5", "size": "5"}, {"sku": "BALL-MATCH-5", "size": "4"}]
    with pytest.raises(ValidationError, match="distinct SKUs"):
        ProductIn.model_validate(product(variants=twice))


def test_two_variants_with_the_same_size_and_colour_are_refused() -> None:
    same = [{"sku": "BALL-A", "size": "5"}, {"sku": "BALL-B", "size": "5"}]
    with pytest.raises(ValidationError, match="differ in size or colour"):
        ProductIn.model_validate(product(variants=same))


def test_a_patch_keeps_only_the_fields_that_were_sent() -> None:
    patch = ProductPatch.model_validate({"price_cents": 7999, "team": None})
    assert patch.changes() == {"price_cents": 7999, "team": None}


@pytest.mark.parametrize("field", ["name", "price_cents", "category", "tags", "active"])
def test_a_patch_cannot_null_a_required_field(field: str) -> None:
    with pytest.raises(ValidationError, match="cannot be null"):
        ProductPatch.model_validate({field: None})


def test_a_patch_applies_the_same_bounds_as_creation() -> None:
    with pytest.raises(ValidationError):
        ProductPatch.model_validate({"price_cents": -5})
    with pytest.raises(ValidationError):
        ProductPatch.model_validate({"name": "n" * 121})


def test_list_query_defaults_and_query_string_numbers() -> None:
    q = ListQuery.model_validate({"min_price_cents": "1000", "in_stock": "true"})
    assert (q.limit, q.offset, q.sort) == (24, 0, "featured")
    assert (q.min_price_cents, q.in_stock) == (1000, True)


@pytest.mark.parametrize(
    "body",
    [
        {"limit": 0},
        {"limit": 101},
        {"offset": -1},
        {"offset": 10_001},
        {"sort": "random"},
        {"q": "q" * 101},
        {"min_price_cents": -1},
        {"min_price_cents": 500, "max_price_cents": 100},
        {"category": "Jerseys"},
        {"size": "x" * 17},
    ],
)
def test_out_of_bounds_list_queries_are_refused(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ListQuery.model_validate(body)


def test_search_words_keep_letters_and_digits_only() -> None:
    q = ListQuery(q="Arg' & !jersey:* | (home) 2026")
    assert q.search_words() == ["arg", "jersey", "home", "2026"]
    assert ListQuery(q="&&& !!!").search_words() == []


def test_a_product_is_in_stock_when_any_variant_has_units() -> None:
    record = ProductRecord.model_validate(
        {
            **product(),
            "description": "",
            "team": None,
            "tags": [],
            "currency": "EUR",
            "featured_rank": 1,
            "active": True,
            "created_at": "2026-06-11T00:00:00Z",
            "updated_at": "2026-06-11T00:00:00Z",
            "variants": [
                {"sku": "A-S", "size": "S", "colour": None, "price_cents": 1, "position": 0},
                {"sku": "A-M", "size": "M", "colour": None, "price_cents": 1, "position": 1},
            ],
        }
    )
    out = ProductOut.merge(record, {"A-S": 0, "A-M": 3})
    assert [(v.available, v.in_stock) for v in out.variants] == [(0, False), (3, True)]
    assert out.in_stock
    assert not ProductOut.merge(record, {}).in_stock


def test_the_demo_catalogue_offers_exactly_the_demo_stock() -> None:
    products = demo_products()
    skus = [v.sku for p in products for v in p.variants]
    assert sorted(skus) == sorted(row.sku for row in demo_stock())
    assert len({p.slug for p in products}) == len(products)
    slugs = {p.slug for p in products}
    assert {"jersey-arg-home", "jersey-final-ltd", "boots-striker", "ball-match-5"} <= slugs
    assert {p.category for p in products} == {"jerseys", "boots", "balls"}
    assert all(p.image_url == f"/static/img/{p.slug}.svg" for p in products)
