"""``python -m modeldeploy.serving``: start one predictor. The only place argv is parsed.

A predictor that cannot start says why in ONE line, its last line of output, and exits
with a code per kind of failure (the operator reads that line as the rejection reason,
and the code tells a script what happened without parsing text):

====  ===========  ==============================================================
code  kind         meaning
====  ===========  ==============================================================
2     usage        bad options (argparse's own message)
3     integrity    files do not match the manifest / the expected digest
4     parity       an ONNX runtime is less accurate than torch beyond the tolerance
5     nan          NaN or infinite logits on the parity sentences
6     load         not a servable checkpoint (missing file, unknown family, ...)
7     registry     the registry version could not be fetched
1     internal     anything else (a traceback is logged before the line)
====  ===========  ==============================================================
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

EXIT_CODES = {
    "integrity": 3,
    "parity": 4,
    "nan": 5,
    "load": 6,
    "registry": 7,
    "config": 8,
    "internal": 1,
}


def failure_kind(exc: BaseException) -> str:
    """Which row of the exit-code table ``exc`` is (imports only what is already loaded)."""
    from modeldeploy.serving.auth import AuthConfigError
    from modeldeploy.serving.backends.base import ParityFailed
    from modeldeploy.serving.backends.parity import NonFiniteOutputs
    from modeldeploy.serving.loading import IntegrityFailed, LoadError, RegistryFailed

    for cls, kind in (
        (IntegrityFailed, "integrity"),
        (RegistryFailed, "registry"),
        (LoadError, "load"),
        (ParityFailed, "parity"),
        (NonFiniteOutputs, "nan"),
        (AuthConfigError, "config"),
    ):
        if isinstance(exc, cls):
            return kind
    return "internal"


def failure_line(kind: str, exc: BaseException) -> str:
    """``error: <kind>: <message>`` on one line, credentials removed from any URI in it."""
    from modeldeploy.registry.uris import redact_text

    message = " ".join((str(exc) or type(exc).__name__).split())
    if kind == "internal":
        message = f"{type(exc).__name__}: {message}"
    return redact_text(f"error: {kind}: {message}")


PROG = "python -m modeldeploy.serving"
DESCRIPTION = "Serve a BERT-family text classifier over KServe v1/v2 (REST and gRPC)."


def main(argv: list[str] | None = None, prog: str = PROG, own_process: bool | None = None) -> int:
    """Start a predictor from ``argv`` (``sys.argv[1:]`` when None).

    ``own_process`` (by default: whether ``argv`` is None) says that this process is the
    predictor, not a test calling in: then malloc's arenas are settled first, which may
    start the process again (:func:`~modeldeploy.serving.startup.with_one_arena`).
    ``modeldeploy serve``, the images' entrypoint, comes here too (``prog`` names it), so
    an image starts the way the benchmark measures.
    """
    from modeldeploy.serving.startup import begin, runtime_from_argv, with_one_arena

    args = list(sys.argv[1:] if argv is None else argv)
    if own_process is None:
        own_process = argv is None
    if own_process:
        with_one_arena()
    # First, before the config module pulls in kserve (startup.py says why).
    begin(runtime_from_argv(args), skip_kserve_init=True)
    from modeldeploy.serving.config import ConfigError, add_arguments, from_args

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    options = parser.parse_args(args)
    try:
        config = from_args(options)
    except ConfigError as exc:
        parser.error(str(exc))
    return serve(config)


def serve(config: Any) -> int:
    """Run the predictor; a start failure becomes its one line and its exit code."""
    from modeldeploy.serving.server import run
    from modeldeploy.serving.startup import resume_gc

    try:
        return run(config)
    except Exception as exc:  # every start failure: one line, a code per kind
        resume_gc()  # for a caller in the same process (run resumes it once built)
        kind = failure_kind(exc)
        if kind == "internal":
            logging.getLogger("modeldeploy.serving").exception("predictor failed to start")
        sys.stderr.flush()
        print(failure_line(kind, exc), file=sys.stderr, flush=True)
        return EXIT_CODES[kind]


if __name__ == "__main__":
    sys.exit(main())
