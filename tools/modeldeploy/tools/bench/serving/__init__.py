"""Benchmarks of the predictor against a naive baseline (and Triton, when available).

``run(output_dir, progress) -> dict`` (also ``python -m modeldeploy.tools.bench.serving``).
"""

from modeldeploy.tools.bench.serving.run import run

__all__ = ["run"]
