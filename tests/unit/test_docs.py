"""The docs match the code: every setting is documented, and nothing documented is gone."""

from __future__ import annotations

import re
from pathlib import Path

from matchday.settings import Settings
from matchday.suppliers.config import SupplierSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "ops" / "configuration.md"
# Read by code outside Settings (cluster/serve_hook.py, cluster/admin_cli.py).
OUTSIDE_SETTINGS = {"MATCHDAY_TRUSTED_PROXIES", "MATCHDAY_OLD_SECRET_KEY"}


def documented() -> set[str]:
    text = CONFIGURATION.read_text()
    names = set(re.findall(r"`(MATCHDAY_[A-Z0-9_]+)`", text))
    # "`MATCHDAY_FRAUD_MAX_PER_CUSTOMER` / `_PER_CARD`": a suffix names a sibling.
    for row in text.splitlines():
        full = re.search(r"`(MATCHDAY_[A-Z0-9_]+?)_[A-Z]+`", row)
        for suffix in re.findall(r"`(_[A-Z0-9_]+)`", row):
            if full:
                names.add(full.group(1).rsplit("_", 1)[0] + suffix)
    return names


def settings_names() -> set[str]:
    names = {f"MATCHDAY_{name.upper()}" for name in Settings.model_fields}
    return names | {f"MATCHDAY_SUPPLIER_{name.upper()}" for name in SupplierSettings.model_fields}


def test_every_setting_is_in_the_configuration_doc() -> None:
    wanted = settings_names()
    assert wanted - documented() == set()


def test_the_configuration_doc_names_no_setting_that_is_gone() -> None:
    known = settings_names() | OUTSIDE_SETTINGS
    assert documented() - known == set()


def test_every_load_test_variable_is_in_the_load_tests_readme() -> None:
    read = set(re.findall(r"MATCHDAY_LT_[A-Z_]+", (ROOT / "loadtests" / "config.py").read_text()))
    readme = (ROOT / "loadtests" / "README.md").read_text()
    assert {name for name in read if f"`{name}`" not in readme} == set()
