"""Demo traffic: real review sentences through the router, true labels fed back later.

``TrafficDriver`` runs a few worker threads that send held-out Rotten Tomatoes sentences to
the router (v1 ``:predict``, one sentence per request), ``rate`` requests per second in
all, as a Poisson process (independent users). Not evenly spaced: on an even grid stable's
two streams (its own requests and its paired copies of the canary's) never overlapped,
while the canary's re-scores for pairing on label landed at random phase among its
requests, so the canary queued more for that reason alone (P99 1.22x stable's against
1.10x with these arrivals, equal models, paced re-scores; docs/serving.md).

Each answered request's true label is posted to the router's ``/v1/feedback``
``label_delay_s`` seconds later by a feedback thread, as a user's correction or a
reviewer's label would arrive, under the request id the router answered with
(``x-request-id``: with authentication on, the router issues ids and ignores ours) and
with the label token (``label_token_file``; local mode writes it as
``<state dir>/auth/label-token``). Everything is bounded: a stop event, a request cap,
and per-call timeouts; only 127.0.0.1 is ever contacted.

``TrafficProcess`` runs the same driver as a process of its own
(``python -m modeldeploy.tools.demo.traffic``), started below the predictors' CPU priority as
local mode starts its router (``operator/local/priority.py``): users' clients do not run on a
pod's cores, and on 2 shared cores a predictor waiting for the driver's threads is what set
equal arms' P99s apart (docs/demo.md). Its counts reach the parent through a small JSON file
it rewrites every second.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modeldeploy.operator.local import procs
from modeldeploy.operator.local.priority import HELPER_NICENESS
from modeldeploy.serving.auth import read_tokens

MODULE = "modeldeploy.tools.demo.traffic"


@dataclass
class TrafficStats:
    """Counts since the driver started (read from other threads: a snapshot is fine)."""

    sent: int = 0
    answered: Counter[str] = field(default_factory=Counter)  # by arm
    failed: int = 0
    labels_sent: int = 0
    labels_refused: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "answered": dict(self.answered)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrafficStats:
        return cls(**{**data, "answered": Counter(data.get("answered", {}))})

    def line(self, elapsed: float) -> str:
        arms = ", ".join(f"{arm} {n}" for arm, n in sorted(self.answered.items()))
        rate = self.sent / elapsed if elapsed > 0 else 0.0
        return (
            f"traffic: {self.sent} requests ({rate:.1f}/s; {arms or 'none answered'}), "
            f"{self.failed} failed, {self.labels_sent} labels fed back"
        )


@dataclass(frozen=True)
class TrafficSettings:
    """How a driver sends: rate and workers, label delay, a request cap, the seed, the label
    token, Poisson or evenly spaced arrivals. One value, so a child process is handed the
    same settings (``to_json``/``from_json``) that a driver in this process takes."""

    rate: float = 20.0
    workers: int = 4
    label_delay_s: float = 3.0
    max_requests: int = 1_000_000
    seed: int = 0
    label_token_file: Path | None = None
    poisson: bool = True  # False: evenly spaced (the old driver; see the module docstring)

    def to_json(self) -> str:
        token = str(self.label_token_file) if self.label_token_file else None
        return json.dumps({**asdict(self), "label_token_file": token})

    @classmethod
    def from_json(cls, text: str) -> TrafficSettings:
        data = json.loads(text)
        token = data.pop("label_token_file", None)
        return cls(**data, label_token_file=Path(token) if token else None)


def _loopback_only(router_url: str) -> None:
    if not router_url.startswith("http://127.0.0.1:"):
        raise ValueError("the demo only sends traffic to 127.0.0.1")


class TrafficDriver:
    def __init__(
        self,
        router_url: str,
        model: str,
        texts: Sequence[str],
        labels: Sequence[int],
        settings: TrafficSettings = TrafficSettings(),
    ) -> None:
        _loopback_only(router_url)
        self.url = router_url.rstrip("/")
        self.model = model
        self.texts, self.labels = list(texts), list(labels)
        self.rate = settings.rate
        self.poisson = settings.poisson
        self.workers = settings.workers
        self.label_delay_s = settings.label_delay_s
        self.max_requests = settings.max_requests
        self.stats = TrafficStats()
        token_file = settings.label_token_file
        self._label_headers = (
            {"Authorization": "Bearer " + read_tokens(token_file)[0].decode()} if token_file else {}
        )
        self._rng = random.Random(settings.seed)
        self._lock = threading.Lock()
        self._due: list[tuple[float, str, int]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_slot = time.monotonic()
        self.started = time.monotonic()

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> TrafficDriver:
        self.started = time.monotonic()
        for i in range(self.workers):
            self._threads.append(threading.Thread(target=self._worker, name=f"traffic-{i}"))
        for i in range(self.workers):
            self._threads.append(threading.Thread(target=self._feedback, name=f"feedback-{i}"))
        for thread in self._threads:
            thread.daemon = True
            thread.start()
        return self

    def counts(self) -> dict[str, Any]:
        """The counts so far, taken under the lock (``TrafficStats.to_json``)."""
        with self._lock:
            return self.stats.to_json()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)

    # --- workers --------------------------------------------------------------------

    def _worker(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                with self._lock:
                    if self.stats.sent >= self.max_requests:
                        return
                    slot = max(self._next_slot, time.monotonic())
                    gap = self._rng.expovariate(self.rate) if self.poisson else 1.0 / self.rate
                    self._next_slot = slot + gap
                    self.stats.sent += 1
                    index = self._rng.randrange(len(self.texts))
                delay = slot - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                self._send(client, index)

    def _send(self, client: httpx.Client, index: int) -> None:
        body = {"instances": [self.texts[index]], "id": f"demo-{uuid.uuid4().hex[:16]}"}
        try:
            response = client.post(f"{self.url}/v1/models/{self.model}:predict", json=body)
        except httpx.HTTPError:
            with self._lock:
                self.stats.failed += 1
            self._stop.wait(0.5)  # the router restarts when the arms change
            return
        with self._lock:
            if response.status_code != 200:
                self.stats.failed += 1
                return
            self.stats.answered[response.headers.get("x-modeldeploy-arm", "served")] += 1
            request_id = response.headers.get("x-request-id", body["id"])  # the router's id
            due = time.monotonic() + self.label_delay_s
            heapq.heappush(self._due, (due, request_id, self.labels[index]))

    def _feedback(self) -> None:
        """One of ``workers`` label posters: a label post can wait for the router to pair it
        (one inference on the other arm), so one poster alone falls behind the traffic."""
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                with self._lock:
                    ready = self._due[0][0] <= time.monotonic() if self._due else False
                    item = heapq.heappop(self._due) if ready else None
                if item is None:
                    self._stop.wait(0.2)
                    continue
                _, request_id, label = item
                self._label(client, request_id, label)

    def _label(self, client: httpx.Client, request_id: str, label: int) -> None:
        try:
            response = client.post(
                f"{self.url}/v1/feedback",
                json={"request_id": request_id, "label": label},
                headers=self._label_headers,
            )
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        with self._lock:
            if ok:
                self.stats.labels_sent += 1
            else:  # e.g. the router restarted and forgot the id: that label is lost
                self.stats.labels_refused += 1


def _write_stats(driver: TrafficDriver, path: Path) -> None:
    """Replace ``path`` with the counts in one rename, so a reader never sees half a file."""
    part = path.with_name(path.name + ".part")
    part.write_text(json.dumps(driver.counts()))
    os.replace(part, path)


class TrafficProcess:
    """A ``TrafficDriver`` in a child process ``lower_priority_by`` nice steps below us.

    The driver's ``TrafficSettings``; the sentences are the fixed split ``split`` of the shipped
    data (``tools.checkpoints.data``), read by the child. ``stats`` reads the counts the child
    last wrote (they lag by up to a second); ``stop`` ends it with SIGTERM, after which the
    child writes its final counts.
    """

    def __init__(
        self,
        router_url: str,
        model: str,
        *,
        work_dir: Path,
        settings: TrafficSettings = TrafficSettings(),
        split: str = "test",
        lower_priority_by: int = HELPER_NICENESS,
    ) -> None:
        _loopback_only(router_url)
        self.stats_file = work_dir / "traffic-stats.json"
        self.work_dir = work_dir
        self.lower_priority_by = lower_priority_by
        self.argv = [
            sys.executable, "-m", MODULE, "--router-url", router_url, "--model", model,
            "--split", split, "--settings", settings.to_json(),
            "--stats-file", str(self.stats_file),
        ]  # fmt: skip
        self.started = time.monotonic()
        self._record: procs.ProcRecord | None = None
        self._last = TrafficStats()

    def start(self, timeout: float = 120.0) -> TrafficProcess:
        """Start the child and wait until it has written its first counts."""
        self.stats_file.unlink(missing_ok=True)
        self._record = procs.start(
            "traffic",
            self.argv,
            port=0,
            log_dir=self.work_dir,
            ready=self.stats_file.exists,
            timeout=timeout,
            lower_priority_by=self.lower_priority_by,
        )
        self.started = time.monotonic()
        return self

    @property
    def pid(self) -> int | None:
        return self._record.pid if self._record is not None else None

    @property
    def stats(self) -> TrafficStats:
        return self.read_stats()

    def read_stats(self) -> TrafficStats:
        with contextlib.suppress(OSError, ValueError):  # not written yet: the last counts read
            self._last = TrafficStats.from_json(json.loads(self.stats_file.read_text()))
        return self._last

    def stop(self) -> None:
        if self._record is not None:
            procs.stop(self._record, timeout=40)
        self.read_stats()  # the child's final counts


def main(argv: list[str] | None = None) -> int:
    """``python -m modeldeploy.tools.demo.traffic``: drive the router until SIGTERM."""
    from modeldeploy.tools.checkpoints.data import load_split

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}")
    parser.add_argument("--router-url", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--settings", default="{}", help="TrafficSettings as JSON")
    parser.add_argument("--stats-file", type=Path, required=True)
    args = parser.parse_args(argv)
    data = load_split(args.split)
    settings = TrafficSettings.from_json(args.settings)
    driver = TrafficDriver(args.router_url, args.model, data.texts, data.labels, settings)
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    driver.start()
    _write_stats(driver, args.stats_file)
    while not done.wait(1.0):
        _write_stats(driver, args.stats_file)
    driver.stop()
    _write_stats(driver, args.stats_file)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
