"""Appearance presets are YAML data files shipped with the package, and a preset may build on another."""

from __future__ import annotations

from importlib import resources

import pytest

from translate.errors import ConfigError
from translate.synthetic import PRESETS, appearance_from, preset


def test_presets_are_the_yaml_files_of_the_package() -> None:
    files = sorted(
        p.name for p in (resources.files("translate.synthetic") / "presets").iterdir() if p.name.endswith(".yaml")
    )
    assert files == sorted(f"{name}.yaml" for name in PRESETS)
    assert {"game", "real", "overcast", "dusk"} <= set(PRESETS)


def test_a_variant_preset_merges_into_its_base() -> None:
    real, dusk = preset("real"), preset("dusk")
    assert dusk.palette["sky"] != real.palette["sky"] and dusk.palette["road"] == real.palette["road"]
    assert dusk.textures == real.textures and dusk.exposure == 0.75 and real.exposure == 1.0
    assert preset("real") is not real and preset("real") == real  # fresh copies
    real.palette["road"].append([0, 0, 0])
    assert preset("real").palette["road"] != real.palette["road"]  # editing a copy leaves the preset alone


def test_unknown_preset_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="unknown appearance preset 'lava'; known: .*game"):
        appearance_from("lava")
