"""Ports handed to the processes this machine starts: never the same one twice at once."""

from __future__ import annotations

import multiprocessing
import socket
from pathlib import Path

from modeldeploy.serving.ports import PORT_RANGE, pick_port


def _picks(counter: str, count: int, out: multiprocessing.Queue) -> None:
    out.put([pick_port(counter=Path(counter)) for _ in range(count)])


def test_concurrent_processes_sharing_the_counter_never_get_the_same_port(tmp_path) -> None:
    counter = tmp_path / "ports.next"
    context = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = context.Queue()
    workers = [context.Process(target=_picks, args=(str(counter), 50, out)) for _ in range(4)]
    for worker in workers:
        worker.start()
    handed = [port for _ in workers for port in out.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=60)
    assert len(handed) == 200 and len(set(handed)) == 200
    low, high = PORT_RANGE
    assert all(low <= port < high for port in handed)


def test_a_port_something_listens_on_is_skipped(tmp_path) -> None:
    counter = tmp_path / "ports.next"
    first = pick_port(counter=counter)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", first + 1))
        busy.listen()
        counter.write_text(str(first + 1))
        assert pick_port(counter=counter) == first + 2


def test_the_counter_wraps_to_the_bottom_of_the_range(tmp_path) -> None:
    counter = tmp_path / "ports.next"
    low, high = PORT_RANGE
    counter.write_text(str(high - 1))
    port = pick_port(counter=counter)
    if port == high - 1:  # the top of the range: the next one is the bottom
        assert int(counter.read_text()) == low
    else:  # the top port was taken on this machine: the hand-out wrapped past it
        assert low <= port < high - 1 and int(counter.read_text()) == port + 1


def test_local_mode_and_the_benchmarks_draw_from_the_shared_counter(tmp_path, monkeypatch) -> None:
    """Every place that starts a local server takes its port from the shared counter: a
    bind-to-0 helper would hand out ports from the ephemeral range and could race."""
    import importlib
    import tempfile

    from modeldeploy.operator.local import procs
    from modeldeploy.tools.bench import operator_scale
    from modeldeploy.tools.bench.serving import fairness

    run = importlib.import_module(
        "modeldeploy.tools.bench.serving.run"
    )  # the package's `run` is a function

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    drawn = [
        procs.free_port(),
        run._free_port(),
        fairness._free_port(),
        operator_scale.free_port(),
    ]
    low, high = PORT_RANGE
    assert all(low <= port < high for port in drawn)
    assert drawn == list(range(drawn[0], drawn[0] + 4))  # one after the other, as counted
    assert (tmp_path / "modeldeploy-ports.next").read_text() == str(drawn[-1] + 1)
