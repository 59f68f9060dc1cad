"""``python -m modeldeploy.serving.router``: run the local router. The only place argv is parsed.

Example::

    python -m modeldeploy.serving.router --deployment demo --port 8000 \\
        --stable http://127.0.0.1:8081 --canary http://127.0.0.1:8082 \\
        --weight 10 --paired-share 20
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from modeldeploy.serving.auth import DEFAULT_LABEL_BURST, DEFAULT_LABEL_RATE_PER_S, Auth
from modeldeploy.serving.contract.args import DEFAULT_RESPONSE_DETAIL, RESPONSE_DETAILS
from modeldeploy.serving.router.app import RouterConfig, serve
from modeldeploy.serving.router.pairing import DEFAULT_RESCORES_PER_S
from modeldeploy.serving.router.split import Split


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.serving.router",
        description="Split v1/v2 inference traffic between stable and canary predictors, "
        "mirror to a shadow, and pair labels for the canary analysis.",
    )
    parser.add_argument("--stable", required=True, help="base URL of the stable predictor")
    parser.add_argument("--canary", help="base URL of the canary predictor")
    parser.add_argument("--shadow", help="base URL of a shadow predictor (responses dropped)")
    for role in ("stable", "canary", "shadow"):
        parser.add_argument(
            f"--{role}-version",
            help=f"the version the {role} arm serves: recorded and logged for its answers "
            "(a label-view answer names none; default: what the answer says)",
        )
    parser.add_argument(
        "--response-detail",
        choices=RESPONSE_DETAILS,
        default=DEFAULT_RESPONSE_DETAIL,
        help="the view the arms answer clients in (their --response-detail): label hides "
        "which arm served a request, in the router's own errors and headers too",
    )
    parser.add_argument("--weight", type=float, default=0.0, help="percent of traffic to canary")
    parser.add_argument(
        "--paired-share",
        type=float,
        default=0.0,
        help="percent of canary requests that stable also scores (paired labels)",
    )
    parser.add_argument(
        "--score-both",
        action="store_true",
        help="while the canary has weight, send every request to stable and the canary at "
        "once (order drawn per request) and answer from the arm the split chose: both arms "
        "see the same stream, so their latencies compare like with like (local mode)",
    )
    parser.add_argument(
        "--pair-on-label-rate",
        type=float,
        default=DEFAULT_RESCORES_PER_S,
        help="re-scores/s: a label for a request one arm scored has the other arm score it "
        "too, up to this rate (over it the label stays unpaired); 0 turns it off",
    )
    parser.add_argument("--deployment", required=True, help="deployment label on every metric")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per upstream call")
    parser.add_argument("--max-connections", type=int, default=128, help="keep-alive pool size")
    parser.add_argument("--seed", type=int, help="seed the traffic split (reproducible runs)")
    auth = parser.add_argument_group(
        "authentication (both token files, or neither: then labels and weights are open)"
    )
    auth.add_argument("--label-token-file", help="tokens that may post labels, one per line")
    auth.add_argument(
        "--control-token-file", help="token for /router/* (and the request-id signing key)"
    )
    auth.add_argument(
        "--label-rate", type=float, default=DEFAULT_LABEL_RATE_PER_S, help="labels/s per token"
    )
    auth.add_argument(
        "--label-burst", type=float, default=DEFAULT_LABEL_BURST, help="label burst per token"
    )
    auth.add_argument(
        "--expose-arm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show clients the serving arm (default: only with --response-detail full)",
    )
    joiner = parser.add_argument_group(
        "the joiner (local mode: one feedback path with KServe; give both or neither)"
    )
    joiner.add_argument(
        "--joiner-url",
        help="the joiner's label listener: POST /v1/feedback is passed there, and the "
        "joiner (not this router) pairs on label and counts paired outcomes",
    )
    joiner.add_argument(
        "--joiner-events-url",
        help="the joiner's events listener: every answered call is posted there as "
        "KServe's inference-logger agent posts it (bounded, in the background)",
    )
    parser.add_argument(
        "--owner",
        default="",
        help="who started this router (local mode: its state directory), so it can be "
        "found and stopped even when its record is lost; not used otherwise",
    )
    return parser


def auth_from(args: argparse.Namespace) -> Auth | None:
    """The router's credentials, or None when neither token file is given."""
    if not args.label_token_file and not args.control_token_file:
        return None
    if not (args.label_token_file and args.control_token_file):
        raise ValueError("give both --label-token-file and --control-token-file, or neither")
    return Auth.from_files(
        args.label_token_file, args.control_token_file, args.label_rate, args.label_burst
    )


def config_from(args: argparse.Namespace) -> RouterConfig:
    if args.weight > 0 and not args.canary:
        raise ValueError("--weight needs --canary")
    if args.pair_on_label_rate < 0:
        raise ValueError("--pair-on-label-rate must be >= 0")
    if bool(args.joiner_url) != bool(args.joiner_events_url):
        raise ValueError("give both --joiner-url and --joiner-events-url, or neither")
    return RouterConfig(
        stable=args.stable,
        canary=args.canary,
        shadow=args.shadow,
        deployment=args.deployment,
        split=Split(canary=args.weight, paired_share=args.paired_share),
        rescores_per_s=args.pair_on_label_rate,
        score_both=args.score_both,
        timeout_s=args.timeout_s,
        max_connections=args.max_connections,
        seed=args.seed,
        auth=auth_from(args),
        expose_arm=args.expose_arm,
        response_detail=args.response_detail,
        versions={
            role: version
            for role in ("stable", "canary", "shadow")
            if (version := getattr(args, f"{role}_version"))
        },
        joiner_url=args.joiner_url,
        joiner_events_url=args.joiner_events_url,
    )


async def _run(config: RouterConfig, host: str, port: int) -> None:
    runner = await serve(config, host, port)
    print(f"router for {config.deployment} listening on http://{host}:{port}", flush=True)
    if config.auth is None:
        print(
            "warning: no token files: anyone who reaches this router can post labels "
            "and change its weights",
            file=sys.stderr,
            flush=True,
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from(args)
    except ValueError as exc:
        parser.error(str(exc))
    asyncio.run(_run(config, args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
