"""Assemble and run one predictor: load, wire routes/middleware/errors, start kserve.

``build`` does all loading (so a failure is reported before any port opens) and
``run`` hands the model to kserve's ModelServer. Timings of each start-up phase are
logged, because cold start is a requirement and this is where it is spent.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from modeldeploy.serving.config import ServeConfig

log = logging.getLogger("modeldeploy.serving")


def _import_kserve() -> None:
    """Import kserve with an empty argv: its model_server module parses sys.argv at import
    time, and abbreviations of our options (``--model``) would otherwise match its own."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve.model_server  # noqa: F401
    finally:
        sys.argv = saved


def process_age() -> float | None:
    """Seconds since this process was created (Linux ``/proc``, 10 ms steps), else None."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return max(0.0, float(uptime.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return None


def build(config: ServeConfig, say: Callable[[str], None] | None = None) -> Any:
    """The ready :class:`TextClassifier` for ``config`` (imports kserve on first use)."""
    say = say or log.info
    phases: dict[str, float] = {}
    age = process_age()
    if age is not None:
        # Interpreter start and module imports before build (kserve arrives here already,
        # through errors.py's kserve base classes, when started as ``-m modeldeploy.serving``).
        phases["process start to build"] = age
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = now - mark
        mark = now

    _import_kserve()
    phase("import kserve")
    from modeldeploy.serving import codecs, loading
    from modeldeploy.serving.backends.factory import load_backend
    from modeldeploy.serving.feedback import PredictionStore, export_store_size
    from modeldeploy.serving.gpu import meter_for
    from modeldeploy.serving.metrics import ArmMetrics
    from modeldeploy.serving.model import TextClassifier

    path, registry_version = loading.resolve(config.source)
    checkpoint = loading.inspect(path, registry_version)
    phase("resolve checkpoint")
    expected = os.environ.get(loading.EXPECTED_DIGEST_ENV)
    # Before anything reads the files: never serve what no manifest vouches for.
    digest = loading.verify_checkpoint(path, expected, from_registry=registry_version is not None)
    phase("verify manifest")
    if not config.policy.max_length:
        config = replace(config, policy=replace(config.policy, max_length=checkpoint.max_length))
    encoder = codecs.TextEncoder.from_directory(
        checkpoint.path, config.policy, token_types=checkpoint.family == "bert"
    )
    labels = codecs.load_labels(checkpoint.path, checkpoint.num_labels)
    phase("tokenizer")
    backend, report = load_backend(
        checkpoint.path,
        config.runtime,
        config.resolved_threads(),
        encoder,
        config.parity_tolerance,
        progress=say,
        precision=config.precision,
        pack_row_tokens=config.pack_row_tokens,
    )
    phase(f"backend {config.runtime}")
    from modeldeploy.serving.backends.parity import FINITE_CHECK_TEXTS, check_finite
    from modeldeploy.serving.data import VALIDATION, held_out

    check_finite(backend, encoder, held_out(VALIDATION)[0][:FINITE_CHECK_TEXTS])
    phase("finite outputs")
    version = config.model_version or checkpoint.version or "local"
    metrics = ArmMetrics(
        config.deployment,
        version,
        config.role,
        labels,
        latency_warmup_requests=config.latency_warmup_requests,
        gpu=meter_for(getattr(backend, "device", "cpu"), held_for=process_age() or 0.0),
    )
    store = PredictionStore(config.feedback_capacity, config.feedback_ttl_s)
    auth = None
    if config.label_token_file and config.control_token_file:
        from modeldeploy.serving.auth import Auth
        from modeldeploy.serving.contract.ids import IdIssuer

        auth = Auth.from_files(config.label_token_file, config.control_token_file)
        store.issue_ids(IdIssuer(auth.id_key, config.role))
    else:
        log.warning("no token files: anyone who reaches this predictor can post labels")
    export_store_size(store, config.deployment)
    model = TextClassifier(config, checkpoint, encoder, backend, metrics, labels, store, version)
    model.parity_report = report
    model.auth = auth
    phase("model")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in phases.items())
    say(
        f"loaded {config.name} ({checkpoint.family}, {len(labels)} labels, max_length "
        f"{config.policy.max_length}) from {checkpoint.path} (manifest digest {digest[:12]}); "
        f"start-up phases: {timings}"
    )
    return model


def install_routes(app: Any, model: Any, config: ServeConfig) -> Any:
    """Feedback route and typed error handlers on kserve's app; returns the ASGI app to serve.

    That is the inference guard around kserve's whole app (outside its middleware), with
    the lean v1 route (``middleware``): kserve's own layers cost most of the event loop's
    CPU on the hot path, and its other routes keep them.
    """
    from modeldeploy.serving import errors
    from modeldeploy.serving.codecs import FULL_DETAIL
    from modeldeploy.serving.feedback import feedback_router
    from modeldeploy.serving.middleware import InferenceGuard

    if not config.labels_at_joiner:  # else the joiner counts labels (docs/serving.md)
        detail = config.response_detail == FULL_DETAIL  # what was predicted, by which version
        app.include_router(
            feedback_router(model.store, model.labels, model.metrics, model.auth, detail)
        )
    errors.install(app)
    return InferenceGuard(
        app, metrics=model.metrics, max_body_bytes=config.max_body_bytes, model=model
    )


def serve_app(asgi: Any) -> None:
    """Make kserve's REST server run ``asgi`` instead of importing its app by name, on
    uvicorn's httptools protocol with each answer in one socket write
    (:mod:`modeldeploy.serving.http_protocol`)."""
    from kserve.protocol.rest import server as rest

    from modeldeploy.serving.http_protocol import OneWriteHttpToolsProtocol

    original = getattr(rest.RESTServer.__init__, "original", rest.RESTServer.__init__)

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.config.app = asgi  # uvicorn takes an app object as well as an import string
        self.config.http = OneWriteHttpToolsProtocol  # and a protocol class as well as a name

    init.original = original  # type: ignore[attr-defined]
    rest.RESTServer.__init__ = init  # type: ignore[method-assign]


def quiet_access_log() -> None:
    """Turn uvicorn's access log off, formatting included.

    A level above INFO drops the lines, but uvicorn's protocol decides whether to log by
    ``hasHandlers()`` on its ``uvicorn.access`` logger, which the root logger's handler
    answers: it then still formats the client address and quotes the path of every
    request before the logger discards the line. A logger with no handlers that does
    not propagate makes ``hasHandlers()`` false, so none of that runs.
    """
    access = logging.getLogger("uvicorn.access")
    access.setLevel(logging.WARNING)
    access.handlers = []
    access.propagate = False


def disable_grpc_repository() -> None:
    """Answer UNIMPLEMENTED to gRPC RepositoryModelLoad/Unload, as REST answers 404.

    kserve's servicer would otherwise let any client unload the one model a predictor
    exists to serve. Patched on the class before the gRPC server builds its servicer.
    """
    import grpc
    from kserve.protocol.grpc.servicer import InferenceServicer

    async def refuse(_self: Any, _request: Any, context: Any) -> None:
        await context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            "the model repository API is disabled on this predictor",
        )

    InferenceServicer.RepositoryModelLoad = refuse  # type: ignore[method-assign]
    InferenceServicer.RepositoryModelUnload = refuse  # type: ignore[method-assign]


def bind_rest_host(host: str) -> None:
    """Make kserve's REST server listen on ``host`` (its ``RESTServer`` hard-codes 0.0.0.0).

    Local mode is loopback-only, so its predictors pass ``--host 127.0.0.1``; in a pod the
    default 0.0.0.0 stays and nothing is patched.
    """
    if host == "0.0.0.0":
        return
    from kserve.protocol.rest import server as rest

    original = rest.RESTServer.__init__
    if getattr(original, "bound_host", None) == host:
        return

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.config.host = host  # uvicorn reads it when it binds, in server.start()

    init.bound_host = host  # type: ignore[attr-defined]
    rest.RESTServer.__init__ = init  # type: ignore[method-assign]


def run(config: ServeConfig) -> int:
    """Load the model and serve until SIGTERM/SIGINT. Returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # kserve's own routes still use ORJSONResponse, which FastAPI now flags on every call.
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")
    from modeldeploy.serving.startup import describe, resume_gc

    log.info(describe())
    model = build(config)

    resume_gc()  # paused by __main__ while start-up imported and loaded (startup.py)
    import kserve
    from kserve.model_server import app

    serve_app(install_routes(app, model, config))
    disable_grpc_repository()
    bind_rest_host(config.host)
    server = kserve.ModelServer(
        http_port=config.http_port,
        grpc_port=config.grpc_port or 8081,
        enable_grpc=config.grpc_port > 0,
        workers=1,
        enable_latency_logging=False,
    )
    if not config.access_log:
        # Log lines per request cost measurable CPU at high request rates (set after
        # ModelServer(), which configures kserve's logging).
        quiet_access_log()
        logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    server.start([model])
    return 0
