"""Benchmarks of the predictor against a naive baseline (and Triton, when available).

``run(output_dir, progress) -> dict`` (also ``python -m modeldeploy.serving.bench``).
"""

from modeldeploy.serving.bench.run import run

__all__ = ["run"]
