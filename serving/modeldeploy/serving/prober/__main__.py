"""``python -m modeldeploy.serving.prober``: probe both arms and expose /metrics.

The only place argv is parsed. Two ways to run it:

- ``--arms-file PATH``: what the platforms run. Probe every undecided rollout the
  operator names in the joiner's arms file(s) with a ``probe`` block, each with its stable
  version's golden set from the registry (``prober/arms.py``);
- ``--stable URL --canary URL``: one pair by hand, with ``--golden FILE`` (default: the
  packaged held-out test split). ``--since`` (the rollout's start, epoch seconds) makes a
  restart resume without re-sending an example; without it the run starts afresh.

Stops on SIGTERM/SIGINT. A run that used its golden set up (or hit ``--max-probes``) keeps
serving /metrics until stopped, so the last counts can still be scraped.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from modeldeploy.serving.prober.arms import ArmsProber, registry_golden_source
from modeldeploy.serving.prober.core import Prober, ProberConfig
from modeldeploy.serving.prober.golden import load_golden
from modeldeploy.serving.prober.schedule import DEFAULT_MARGIN_S, rollout_key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.serving.prober",
        description="Send labelled golden-set probes to the stable and canary arms; each"
        " golden example is used at most once per rollout.",
    )
    parser.add_argument(
        "--arms-file",
        type=Path,
        help="the joiner's arms file or directory: probe every rollout with a 'probe' entry",
    )
    parser.add_argument("--stable", help="base URL of the stable arm (one pair by hand)")
    parser.add_argument("--canary", help="base URL of the canary arm (one pair by hand)")
    parser.add_argument("--deployment", default="", help="deployment label (by hand)")
    parser.add_argument("--model-name", help="the model name in /v1/models/NAME (by hand)")
    parser.add_argument(
        "--stable-version",
        default="",
        help="the version the stable arm serves (by hand; label-view answers name none)",
    )
    parser.add_argument(
        "--canary-version", default="", help="the version the canary arm serves (by hand)"
    )
    parser.add_argument("--rate", type=float, default=1.0, help="probes per second (by hand)")
    parser.add_argument("--golden", type=Path, help="JSONL of {text, label} (default: test split)")
    parser.add_argument("--since", type=float, help="the rollout's start, epoch seconds")
    parser.add_argument("--max-probes", type=int, help="stop probing after this many")
    parser.add_argument("--timeout-s", type=float, default=10.0)
    parser.add_argument("--poll-s", type=float, default=2.0, help="arms file re-read interval")
    parser.add_argument(
        "--margin-s",
        type=float,
        default=DEFAULT_MARGIN_S,
        help="on (re)start, also skip the slots due this soon (clock differences between"
        " machines: a restarted prober must not re-send an example)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100, help="/metrics port")
    return parser


async def _serve(
    registry: CollectorRegistry,
    health: Callable[[], Mapping[str, Any]],
    work: Callable[[asyncio.Event], Awaitable[Any]],
    host: str,
    port: int,
    what: str,
) -> None:
    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok", **health()})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"prober for {what}: /metrics on http://{host}:{port}", flush=True)
    await work(stop)
    await stop.wait()
    await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.arms_file is not None:
        if args.stable or args.canary:
            parser.error("give --arms-file, or --stable and --canary, not both")
        arms = ArmsProber(
            args.arms_file,
            registry_golden_source(),
            poll_s=args.poll_s,
            timeout_s=args.timeout_s,
            margin_s=args.margin_s,
        )
        asyncio.run(
            _serve(
                arms.registry,
                lambda: {"deployments": arms.snapshot()},
                arms.run,
                args.host,
                args.port,
                f"the rollouts in {args.arms_file}",
            )
        )
        return 0
    if not (args.stable and args.canary and args.model_name and args.deployment):
        parser.error("--stable, --canary, --deployment and --model-name (or --arms-file)")
    golden = load_golden(args.golden)
    config = ProberConfig(
        deployment=args.deployment,
        stable_url=args.stable,
        canary_url=args.canary,
        model_name=args.model_name,
        rate_per_s=args.rate,
        timeout_s=args.timeout_s,
        max_probes=args.max_probes,
        since=args.since,
        stable_version=args.stable_version,
        canary_version=args.canary_version,
        margin_s=args.margin_s,
        key=rollout_key(args.deployment, args.stable, args.canary, str(args.golden or "")),
    )
    prober = Prober(config, golden)
    asyncio.run(
        _serve(
            prober.metrics.registry,
            lambda: {"sent": prober.sent, "exhausted": prober.exhausted},
            prober.run,
            args.host,
            args.port,
            args.deployment,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
