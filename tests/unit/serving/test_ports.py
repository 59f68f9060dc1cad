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
