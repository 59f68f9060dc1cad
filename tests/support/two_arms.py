"""Two real predictor processes with local mode's token files, for router and label tests.

Stable serves ``tiny`` (version 1), canary ``tiny-distilbert`` (version 2); both read the
label and control tokens from files laid out as local mode lays them out, so ids are the
platform's signed ones. Several integration files attack or exercise the label path through
the same pair, so they start it here once instead of each repeating forty lines.
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, write_token_file
from modeldeploy.tools.checkpoints import build
from tests.support.processes import ManagedProcess, free_port, http_ok, start_process

PY = sys.executable
ARM_CHECKPOINTS = (("stable", "tiny", "1"), ("canary", "tiny-distilbert", "2"))


@dataclass
class TwoArms:
    """The running pair, its credentials, and every process started on its behalf."""

    urls: dict[str, str]
    auth_args: list[str]
    label: str
    control: str
    root: Path
    started: list[ManagedProcess] = field(default_factory=list)

    def version_args(self) -> list[str]:
        """What local mode tells its router: each arm's version (answers name none)."""
        return [a for role, _, v in ARM_CHECKPOINTS for a in (f"--{role}-version", v)]

    def router(self, name: str, *options: str, weight: int = 0, paired_share: int = 0) -> str:
        """Start a router in front of both arms; stopped with the pair."""
        url, _ = self.router_process(name, *options, weight=weight, paired_share=paired_share)
        return url

    def router_process(
        self, name: str, *options: str, weight: int = 0, paired_share: int = 0
    ) -> tuple[str, ManagedProcess]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        argv = [PY, "-m", "modeldeploy.serving.router", "--stable", self.urls["stable"],
                "--canary", self.urls["canary"], "--weight", str(weight),
                "--paired-share", str(paired_share), "--deployment", "demo",
                "--port", str(port), *self.auth_args, *self.version_args(), *options]  # fmt: skip
        proc = start_process(
            name, argv, self.root / "logs", lambda: http_ok(f"{url}/healthz"), timeout=60
        )
        self.started.append(proc)
        return url, proc


@contextmanager
def two_arms(root: Path, detail: str = "label") -> Iterator[TwoArms]:
    """Start both predictors (and stop them, and any router started through the pair).

    ``detail``: their ``--response-detail`` (what clients see); label, as by default."""
    label_file = write_token_file(root / "auth" / LABEL_TOKEN_FILE)
    control_file = write_token_file(root / "auth" / CONTROL_TOKEN_FILE)
    auth_args = ["--label-token-file", str(label_file), "--control-token-file", str(control_file)]
    pair = TwoArms({}, auth_args, label_file.read_text().strip(),
                   control_file.read_text().strip(), root)  # fmt: skip
    try:
        for role, checkpoint, version in ARM_CHECKPOINTS:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            argv = [PY, "-m", "modeldeploy.serving", "--model-dir", str(build(checkpoint)),
                    "--name", "m", "--deployment", "demo", "--role", role,
                    "--model-version", version, "--http-port", str(port), "--grpc-port", "0",
                    "--threads", "1", "--response-detail", detail, *auth_args]  # fmt: skip
            ready = f"{url}/v2/health/ready"
            pair.started.append(
                start_process(
                    f"predictor-{role}", argv, root / "logs", partial(http_ok, ready), timeout=180
                )
            )
            pair.urls[role] = url
        yield pair
    finally:
        for proc in reversed(pair.started):
            proc.stop()


def call(
    method: str, url: str, body: Any = None, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    """One JSON request; returns status, decoded body and lower-cased headers, errors too."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            reply = response.status, json.loads(response.read()), response.headers
    except urllib.error.HTTPError as exc:
        reply = exc.code, json.loads(exc.read() or b"null"), exc.headers
    return reply[0], reply[1], {k.lower(): v for k, v in reply[2].items()}


def metric_sum(url: str, name: str, **labels: str) -> float:
    """Sum of ``name`` over the label sets matching ``labels`` (all of them by default)."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


async def flood_labels(url: str, label_token: str, total: int) -> Counter[int]:
    """``total`` label posts to ``url``/v1/feedback, 32 at a time, by status.

    A third anonymous, a third with a wrong token, a third with the label token and ids
    never issued: an attacker's mix, none of which may change a count.
    """
    statuses: Counter[int] = Counter()
    tokens = [None, "wrong-token-0123456789abcdef", label_token]
    connector = aiohttp.TCPConnector(limit=32)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        queue = iter(range(total))

        async def worker() -> None:
            for i in queue:
                token = tokens[i % 3]
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                body = {"request_id": f"flood-{i}", "label": i % 2}
                async with session.post(f"{url}/v1/feedback", json=body, headers=headers) as reply:
                    await reply.read()
                    statuses[reply.status] += 1

        await asyncio.gather(*(worker() for _ in range(32)))
    return statuses
