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


def test_continue_epochs_at_its_default_leaves_every_cached_key_alone() -> None:
    good = get_recipe("good")
    fields = dataclasses.asdict(good)
    assert fields["continue_epochs"] == 0.0
    assert good.key() != dataclasses.replace(good, continue_epochs=0.5).key()


def test_close_is_good_trained_further_not_a_retrain() -> None:
    close = get_recipe("close")
    assert close.base == "good" and close.continue_epochs > 0
    assert close.learning_rate < get_recipe("good").learning_rate
    assert close.trainable_from == get_recipe("good").trainable_from
