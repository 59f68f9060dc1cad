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

from modeldeploy.serving.router.app import RouterConfig, serve
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
    parser.add_argument("--weight", type=float, default=0.0, help="percent of traffic to canary")
    parser.add_argument(
        "--paired-share",
        type=float,
        default=0.0,
        help="percent of canary requests that stable also scores (paired labels)",
    )
    parser.add_argument("--deployment", required=True, help="deployment label on every metric")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per upstream call")
    parser.add_argument("--max-connections", type=int, default=128, help="keep-alive pool size")
    parser.add_argument("--seed", type=int, help="seed the traffic split (reproducible runs)")
    parser.add_argument(
        "--owner",
        default="",
        help="who started this router (local mode: its state directory), so it can be "
        "found and stopped even when its record is lost; not used otherwise",
    )
    return parser


def config_from(args: argparse.Namespace) -> RouterConfig:
    if args.weight > 0 and not args.canary:
        raise ValueError("--weight needs --canary")
    return RouterConfig(
        stable=args.stable,
        canary=args.canary,
        shadow=args.shadow,
        deployment=args.deployment,
        split=Split(canary=args.weight, paired_share=args.paired_share),
        timeout_s=args.timeout_s,
        max_connections=args.max_connections,
        seed=args.seed,
    )


async def _run(config: RouterConfig, host: str, port: int) -> None:
    runner = await serve(config, host, port)
    print(f"router for {config.deployment} listening on http://{host}:{port}", flush=True)
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
