"""`matchday run --apps`: a stack of some of serve_config.yaml's apps, named and checked."""

from __future__ import annotations

import pytest

from cluster.cli import parser
from cluster.serving import app_names, chosen_apps, load_config


def test_all_apps_by_default_and_the_chosen_ones_in_the_configs_order() -> None:
    assert chosen_apps(None) is None
    assert chosen_apps(" shop,catalog ") == ["catalog", "shop"]
    config = load_config(apps=chosen_apps("shop,catalog"))
    assert [a["name"] for a in config["applications"]] == ["catalog", "shop"]
    assert {"catalog", "shop", "orders", "admin", "storefront"} <= set(app_names())


@pytest.mark.parametrize("spec", ["shop,nosuch", "", " , "])
def test_an_unknown_or_empty_choice_is_refused_naming_the_apps(spec: str) -> None:
    with pytest.raises(ValueError, match="the apps are catalog, shop"):
        chosen_apps(spec)


def test_the_run_command_takes_the_option() -> None:
    args = parser().parse_args(["run", "--apps", "catalog,shop"])
    assert args.apps == "catalog,shop"
    assert parser().parse_args(["run"]).apps is None
