"""Benchmarks of the control plane: the canary analysis simulation."""
