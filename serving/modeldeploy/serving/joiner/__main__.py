"""``python -m modeldeploy.serving.joiner``: run the joiner. The only place argv is parsed.

Example (the chart runs the same with the label Secret mounted)::

    python -m modeldeploy.serving.joiner --port 8080 --events-port 8081 \\
        --label-token-file /auth/label-token --control-token-file /auth/control-token \\
        --arms-file /etc/modeldeploy/joiner
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from modeldeploy.serving.auth import DEFAULT_LABEL_BURST, DEFAULT_LABEL_RATE_PER_S, Auth
from modeldeploy.serving.contract.ids import ROUTER_ORIGIN, IdIssuer
from modeldeploy.serving.contract.store import (
    DEFAULT_STORE_CAPACITY,
    DEFAULT_STORE_MAX_BYTES,
    DEFAULT_STORE_TTL_S,
)
from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.journal import Journal, JournalError
from modeldeploy.serving.joiner.pairing import DEFAULT_PAIR_RATE, DEFAULT_PAIR_SHARE, ArmsFile
from modeldeploy.serving.prober.arms import ArmsProber
from modeldeploy.serving.router.pairing import DEFAULT_INPUT_BYTES, DEFAULT_RESCORES_PER_S


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.serving.joiner",
        description="Join labels to what each arm predicted, from KServe's inference logger "
        "(CloudEvents), across replicas and revisions; export the per-version accuracy and "
        "paired-outcome counters the canary analysis reads.",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address of both listeners")
    parser.add_argument(
        "--port", type=int, default=8080, help="labels (POST /v1/feedback), /metrics, /healthz"
    )
    parser.add_argument(
        "--events-port",
        type=int,
        default=8081,
        help="KServe's logger posts here (POST /v1/events?deployment=&role=&version=); keep "
        "it reachable by predictor pods only (the chart's NetworkPolicy)",
    )
    parser.add_argument(
        "--arms-file",
        help="JSON file naming each deployment's arm URLs, for pairing on label, or a "
        "directory of them (every *.json: the mounted arms ConfigMap the operator keeps "
        "current); re-read when it changes; without it labels are never paired here",
    )
    parser.add_argument(
        "--pair-on-label-rate",
        type=float,
        default=DEFAULT_RESCORES_PER_S,
        help="re-scores/s on the other arm for labels of items one arm scored; 0: off",
    )
    parser.add_argument(
        "--pair-share",
        type=float,
        default=DEFAULT_PAIR_SHARE,
        help="share of unlabelled logged responses (0..1) re-scored on the other arm, at "
        "random, for the drift checks' paired evidence (modeldeploy_paired_predictions_total); "
        "0: off (local mode's router pairs its own requests)",
    )
    parser.add_argument(
        "--pair-rate",
        type=float,
        default=DEFAULT_PAIR_RATE,
        help="at most this many of those re-scores per second (the compute budget)",
    )
    parser.add_argument("--rescore-timeout-s", type=float, default=10.0)
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also run the golden-set prober on the rollouts in --arms-file that ask for it"
        " (serving/prober/arms.py); its series are on this /metrics",
    )
    store = parser.add_argument_group("the bounded store (oldest out first on every bound)")
    store.add_argument("--store-capacity", type=int, default=DEFAULT_STORE_CAPACITY)
    store.add_argument("--store-ttl-s", type=float, default=DEFAULT_STORE_TTL_S)
    store.add_argument("--store-max-bytes", type=int, default=DEFAULT_STORE_MAX_BYTES)
    store.add_argument(
        "--input-bytes",
        type=int,
        default=DEFAULT_INPUT_BYTES,
        help="memory for request bodies kept for pairing",
    )
    store.add_argument(
        "--state-file",
        help="SQLite file that keeps the book across restarts (what each arm predicted, "
        "which items are labelled, the inputs for pairing): a restarted joiner still joins "
        "labels for predictions made before it (serving/joiner/journal.py); without it the "
        "book is memory only",
    )
    auth = parser.add_argument_group(
        "authentication (both token files, or neither: then labels are open and ids unchecked)"
    )
    auth.add_argument("--label-token-file", help="tokens that may post labels, one per line")
    auth.add_argument(
        "--control-token-file",
        help="the platform's control token: the request-id signing key (the predictors' too)",
    )
    auth.add_argument(
        "--label-rate", type=float, default=DEFAULT_LABEL_RATE_PER_S, help="labels/s per token"
    )
    auth.add_argument(
        "--label-burst", type=float, default=DEFAULT_LABEL_BURST, help="label burst per token"
    )
    return parser


def config_from(args: argparse.Namespace) -> JoinerConfig:
    if bool(args.label_token_file) != bool(args.control_token_file):
        raise ValueError("give both --label-token-file and --control-token-file, or neither")
    if args.pair_on_label_rate < 0:
        raise ValueError("--pair-on-label-rate must be >= 0")
    if not 0.0 <= args.pair_share <= 1.0:
        raise ValueError("--pair-share must be between 0 and 1")
    if args.pair_rate < 0:
        raise ValueError("--pair-rate must be >= 0")
    auth = None
    if args.label_token_file:
        auth = Auth.from_files(
            args.label_token_file, args.control_token_file, args.label_rate, args.label_burst
        )
    checker = IdIssuer(auth.id_key, ROUTER_ORIGIN) if auth else None  # checks any origin
    journal = None
    if args.state_file:
        journal = Journal(
            Path(args.state_file),
            args.store_ttl_s,
            args.store_capacity,
            input_bytes=args.input_bytes,
        )
    book = JoinBook(
        checker,
        args.store_capacity,
        args.store_ttl_s,
        args.store_max_bytes,
        args.input_bytes,
        journal=journal,
    )
    return JoinerConfig(
        auth,
        book,
        ArmsFile(args.arms_file),
        args.pair_on_label_rate,
        args.rescore_timeout_s,
        pair_share=args.pair_share,
        pair_rate=args.pair_rate,
    )


def _prober(joiner: Joiner, arms_file: str) -> ArmsProber:
    """The golden-set prober in this process, counting in the joiner's contract counters."""
    from modeldeploy.serving.prober.arms import registry_golden_source
    from modeldeploy.serving.prober.core import share_collectors

    share_collectors(joiner.metrics.registry, *joiner.metrics.contract_counters)
    return ArmsProber(arms_file, registry_golden_source(), joiner.metrics.registry)


async def _run(
    joiner: Joiner, host: str, port: int, events_port: int, prober: ArmsProber | None = None
) -> None:
    runners = [web.AppRunner(joiner.api_app(), access_log=None),
               web.AppRunner(joiner.events_app(), access_log=None)]  # fmt: skip
    for runner, at in zip(runners, (port, events_port), strict=True):
        await runner.setup()
        await web.TCPSite(runner, host, at).start()
    print(f"joiner: labels on http://{host}:{port}, events on http://{host}:{events_port}",
          flush=True)  # fmt: skip
    if joiner.auth is None:
        print("warning: no token files: anyone who reaches this joiner can post labels, "
              "and unsigned ids are recorded", file=sys.stderr, flush=True)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    probing = asyncio.create_task(prober.run(stop)) if prober is not None else None
    await stop.wait()
    if probing is not None:
        await probing
    for runner in runners:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
        restored = config.book.restore()
    except (ValueError, JournalError) as exc:  # AuthConfigError is a ValueError
        parser.error(str(exc))
    if config.book.journal is not None:
        print(f"joiner: state in {config.book.journal.path}: restored {restored.predictions} "
              f"predictions, {restored.labelled} labelled items and {restored.inputs} inputs "
              f"within the last {args.store_ttl_s:g} s", flush=True)  # fmt: skip
    if args.probe and not args.arms_file:
        parser.error("--probe reads the rollouts to probe from --arms-file")
    joiner = Joiner(config)
    prober = _prober(joiner, args.arms_file) if args.probe else None
    asyncio.run(_run(joiner, args.host, args.port, args.events_port, prober))
    return 0


if __name__ == "__main__":
    sys.exit(main())
