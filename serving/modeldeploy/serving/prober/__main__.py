"""``python -m modeldeploy.serving.prober``: probe both arms and expose /metrics.

The only place argv is parsed. Stops on SIGTERM/SIGINT, or after ``--max-probes``
(it then keeps serving /metrics until stopped, so the last counts can still be scraped).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from modeldeploy.serving.prober.core import Prober, ProberConfig
from modeldeploy.serving.prober.golden import load_golden


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.serving.prober",
        description="Send labelled golden-set probes to the stable and canary arms.",
    )
    parser.add_argument("--stable", required=True, help="base URL of the stable arm")
    parser.add_argument("--canary", required=True, help="base URL of the canary arm")
    parser.add_argument("--deployment", required=True)
    parser.add_argument("--model-name", required=True, help="the model name in /v1/models/NAME")
    parser.add_argument(
        "--stable-version",
        default="",
        help="the version the stable arm serves (label-view answers name none)",
    )
    parser.add_argument("--canary-version", default="", help="the version the canary arm serves")
    parser.add_argument("--rate", type=float, default=1.0, help="probes per second")
    parser.add_argument("--golden", type=Path, help="JSONL of {text, label} (default: test split)")
    parser.add_argument("--max-probes", type=int, help="stop probing after this many")
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="/metrics port")
    return parser


async def _run(prober: Prober, host: str, port: int) -> None:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(prober.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "sent": prober.sent})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"prober for {prober.config.deployment}: /metrics on http://{host}:{port}", flush=True)
    await prober.run(stop)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = ProberConfig(
        deployment=args.deployment,
        stable_url=args.stable,
        canary_url=args.canary,
        model_name=args.model_name,
        rate_per_s=args.rate,
        timeout_s=args.timeout_s,
        max_probes=args.max_probes,
        seed=args.seed,
        stable_version=args.stable_version,
        canary_version=args.canary_version,
    )
    asyncio.run(_run(Prober(config, load_golden(args.golden)), args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
