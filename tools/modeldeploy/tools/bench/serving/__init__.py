"""Benchmarks of the predictor against its in-process ceiling, a naive baseline and Triton.

``run(output_dir, progress) -> dict`` (also ``python -m modeldeploy.tools.bench.serving``).
"""

from modeldeploy.tools.bench.serving.run import run

__all__ = ["run"]
