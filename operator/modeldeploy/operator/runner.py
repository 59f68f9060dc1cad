"""``modeldeploy operator run``: start kopf with our handlers (peering = leader election).

With leader election on, every replica joins the same kopf peering object, and kopf keeps
only the replica with the highest priority active ("Pausing all operators, including
self" when two share the top priority). So each replica picks a priority of its own: the
``--priority`` given, else a random one drawn at start (a collision among a few replicas
in 2**31 is negligible, and a restarted replica simply draws again).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)
PRIORITY_RANGE = 2**31 - 1


def replica_priority(given: int = 0) -> int:
    """``given`` when set, else a random priority in [1, 2**31 - 1]."""
    if given < 0:
        raise ValueError(f"--priority must be positive, got {given}")
    return given or 1 + secrets.randbelow(PRIORITY_RANGE)


class DaemonThreads(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor: one daemon thread per call, never joined at exit.

    (A ThreadPoolExecutor only because asyncio accepts no other as the default; none of
    its pooled, non-daemon workers is ever started.)

    A registry call blocked on an unreachable MLflow must not hold the process after
    SIGTERM: ``asyncio.run`` and the interpreter's exit both join the threads of a
    ``ThreadPoolExecutor``. Whatever such a thread would still write is fenced by the
    status' resourceVersion (see ``handlers/lifecycle.py``).
    """

    def submit(  # type: ignore[override]
        self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # handed to the awaiting coroutine
                future.set_exception(exc)

        threading.Thread(target=work, daemon=True, name="modeldeploy-io").start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Nothing to join: the threads are daemons."""


def run_operator(
    *,
    namespaces: list[str],
    all_namespaces: bool,
    standalone: bool,
    peering: str,
    liveness: str,
    priority: int = 0,
    kubeconfig: str = "",
) -> int:
    import kopf

    import modeldeploy.operator.handlers.lifecycle
    import modeldeploy.operator.handlers.startup  # noqa: F401 - registers the handlers

    chosen = 0 if standalone else replica_priority(priority)
    if not standalone:
        log.info("peering %r with priority %d", peering, chosen)

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(DaemonThreads())
        # A peering name makes peering mandatory in kopf, and standalone watches no peering
        # resource: both together pause every watch-stream forever ("peering CRD is missing").
        await kopf.operator(
            clusterwide=all_namespaces,
            namespaces=namespaces or (),
            standalone=standalone,
            peering_name=None if standalone else peering,
            priority=chosen,
            liveness_endpoint=liveness or None,
            memo=kopf.Memo(kubeconfig=kubeconfig, priority=chosen),
        )

    asyncio.run(main())
    return 0
