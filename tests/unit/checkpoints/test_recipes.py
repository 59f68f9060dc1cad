"""Recipes are named, deterministic and cached by content hash."""

from __future__ import annotations

import dataclasses

import pytest

from modeldeploy.tools.checkpoints.recipes import FAMILIES, RECIPES, get_recipe


def test_recipe_key_is_stable_for_equal_recipes() -> None:
    good = get_recipe("good")
    assert good.key() == dataclasses.replace(good).key()


def test_recipe_key_changes_when_training_changes() -> None:
    good = get_recipe("good")
    assert good.key() != dataclasses.replace(good, seed=good.seed + 1).key()
    assert good.key() != dataclasses.replace(good, label_noise=0.1).key()


def test_recipe_key_ignores_the_description() -> None:
    good = get_recipe("good")
    assert good.key() == dataclasses.replace(good, description="reworded").key()


def test_family_variant_key_follows_its_base_recipe() -> None:
    variant = get_recipe("good-roberta")
    assert variant.base == "good"
    assert variant.family == "roberta"
    assert variant.key() != get_recipe("good").key()


def test_every_family_exists_for_good_and_tiny() -> None:
    for base in ("good", "tiny"):
        for family in FAMILIES:
            name = base if family == "bert" else f"{base}-{family}"
            assert RECIPES[name].family == family


def test_the_issue_recipes_exist() -> None:
    assert {"good", "bad", "close", "slow", "tiny"} <= set(RECIPES)
    assert get_recipe("slow").extra_layers > 0
    assert get_recipe("slow").base == "good"


def test_unknown_recipe_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match=r"known recipes: .*good"):
        get_recipe("excellent")
