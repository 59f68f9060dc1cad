"""Inference backends: torch (fp32 reference, bf16/fp16 autocast) and ONNX Runtime (optionally
INT8), one factory choosing precision from the hardware (``hardware``).

Import :func:`load_backend` from :mod:`modeldeploy.serving.backends.factory`; this
package itself imports nothing heavy, so choosing ``onnx`` never loads torch when the
exported graph and its parity verdict are already cached.
"""
