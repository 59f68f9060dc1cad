"""The local (one-machine) router: weight split, shadow mirror, paired labels, feedback.

Run it as ``python -m modeldeploy.serving.router``; embed it with :func:`serve`.
"""

from modeldeploy.serving.router.app import Router, RouterConfig, serve
from modeldeploy.serving.router.split import Split

__all__ = ["Router", "RouterConfig", "Split", "serve"]
