"""Inference backends: torch (reference) and ONNX Runtime (optionally INT8), one factory.

Import :func:`load_backend` from :mod:`modeldeploy.serving.backends.factory`; this
package itself imports nothing heavy, so choosing ``onnx`` never loads torch when the
exported graph and its parity verdict are already cached.
"""
