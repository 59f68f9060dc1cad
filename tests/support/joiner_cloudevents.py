"""CloudEvents exactly as KServe's agent posts them: the builder lives in the product
(:mod:`modeldeploy.serving.contract.cloudevents`, which the local router uses as its logger
agent); the tests use the same one, so what they send is what local mode sends."""

from modeldeploy.serving.contract.cloudevents import REQUEST, RESPONSE, Agent

__all__ = ["REQUEST", "RESPONSE", "Agent"]
