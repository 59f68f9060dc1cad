"""Benchmarks: the analysis simulation and the serving load test (`modeldeploy-dev bench`)."""
