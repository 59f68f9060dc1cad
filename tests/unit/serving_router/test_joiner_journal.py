"""The joiner's book survives a restart through its journal (serving/joiner/journal.py).

A second ``JoinBook`` over the same SQLite file stands for the restarted process: it must
know every prediction and input still within the TTL (at its age, so it expires when it
would have), never count a label twice, resolve class names it learned before, and forget
what is past the TTL or over capacity.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from modeldeploy.operator.metrics.scrape import parse_samples
from modeldeploy.serving.joiner import journal as journal_module
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.events import Arm, scored
from modeldeploy.serving.joiner.journal import Journal, JournalError
from modeldeploy.serving.joiner.metrics import JoinerMetrics
from modeldeploy.serving.router.pairing import StoredInput
from tests.unit.serving_router.test_joiner_book import CANARY, STABLE, v1_answer

TTL = 600.0


class Clocks:
    """A wall clock (the journal's) and a monotonic one (the book's) that restarts."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 50.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def reboot(self) -> None:
        self.mono = 3.0  # a new machine's monotonic clock starts near zero


def _book(path: Path, clocks: Clocks, capacity: int = 1000) -> JoinBook:
    journal = Journal(path, TTL, capacity, clock=lambda: clocks.wall)
    return JoinBook(ttl_s=TTL, capacity=capacity, clock=lambda: clocks.mono, journal=journal)


def test_a_restarted_book_knows_predictions_links_inputs_and_class_names(tmp_path: Path) -> None:
    clocks, path = Clocks(), tmp_path / "book.sqlite"
    first = _book(path, clocks)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds what clients sent
    body = StoredInput("", b'{"instances": ["x"]}', {"content-type": "application/json"}, "v1")
    first.record_input("pod-a/ce-1", body)
    assert first.record(STABLE, scored(v1_answer("r1", [1]), "1"), "pod-a/ce-1") == "recorded"
    assert first.record(CANARY, scored(v1_answer("r1", [0], "2"), "2"), None) == "recorded"
    first.record(STABLE, scored(v1_answer("r2", [0, 1]), "1"), None)
    first.journal.close()

    clocks.advance(30)
    clocks.reboot()
    second = _book(path, clocks)
    restored = second.restore()
    assert (restored.predictions, restored.labelled, restored.inputs) == (4, 0, 1)
    for made_by_sqlite in tmp_path.glob("book.sqlite-*"):  # the WAL and its index
        assert stat.S_IMODE(made_by_sqlite.stat().st_mode) == 0o600, made_by_sqlite
    status, item = second.lookup("r1")
    assert status == "found" and item is not None
    assert {r: (p.model_version, p.label, p.label_index) for r, p in item.predictions.items()} == {
        "stable": ("1", "positive", 1),
        "canary": ("2", "negative", 0),
    }
    assert item.links == {"stable": "pod-a/ce-1"} and not item.labelled
    assert second.stored_input(item, "stable") == body
    assert second.lookup("r2/1")[0] == "found"
    assert second.classes.resolve("demo", "positive") == 1  # a label by name still resolves
    # First write wins across the restart too: a re-logged answer changes nothing.
    assert second.record(STABLE, scored(v1_answer("r1", [0]), "1"), None) == "duplicate"


def test_a_label_counted_before_the_restart_is_never_counted_again(tmp_path: Path) -> None:
    clocks, path = Clocks(), tmp_path / "book.sqlite"
    first = _book(path, clocks)
    first.record(STABLE, scored(v1_answer("done", [1]), "1"), None)
    first.record(STABLE, scored(v1_answer("open", [1]), "1"), None)
    _, done = first.lookup("done")
    assert done is not None
    first.mark_labelled("done", done)
    first.journal.close()

    second = _book(path, clocks)
    assert second.restore().labelled == 1
    assert second.lookup("done")[1].labelled  # type: ignore[union-attr]
    assert not second.lookup("open")[1].labelled  # type: ignore[union-attr]


def test_entries_come_back_at_their_age_and_expire_when_they_would_have(tmp_path: Path) -> None:
    clocks, path = Clocks(), tmp_path / "book.sqlite"
    first = _book(path, clocks)
    first.record(STABLE, scored(v1_answer("old", [1]), "1"), None)
    clocks.advance(TTL - 100)
    first.record(STABLE, scored(v1_answer("young", [1]), "1"), None)
    first.journal.close()

    clocks.advance(50)  # "old" is 50 s from its end, "young" 550 s
    clocks.reboot()
    second = _book(path, clocks)
    assert second.restore().predictions == 2
    clocks.advance(60)
    assert second.lookup("old")[0] == "expired"
    assert second.lookup("young")[0] == "found"

    clocks.advance(TTL)  # both past the TTL: a third start restores nothing
    third = _book(path, clocks)
    assert third.restore().predictions == 0
    assert third.lookup("young")[0] == "unknown"
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM predictions").fetchone()
    assert rows == (0,)  # and the file forgot them at that start


def test_the_file_stays_bounded_by_the_ttl_and_the_capacity(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(journal_module, "PRUNE_EVERY", 10)
    clocks, path = Clocks(), tmp_path / "book.sqlite"
    book = _book(path, clocks, capacity=20)
    for i in range(100):
        book.record(STABLE, scored(v1_answer(f"r{i}", [1]), "1"), None)
        book.record_input(f"link-{i}", StoredInput("", b"{}", {}, "v1"))
    db = sqlite3.connect(path)
    (rows,) = db.execute("SELECT COUNT(*) FROM predictions").fetchone()
    (inputs,) = db.execute("SELECT COUNT(*) FROM inputs").fetchone()
    assert rows <= 2 * 20 + 10 and inputs <= 20 + 10
    (newest,) = db.execute("SELECT MAX(item_id) FROM predictions WHERE item_id = 'r99'").fetchone()
    assert newest == "r99"  # the oldest went, not the newest
    clocks.advance(TTL + 1)
    book.journal.prune()
    assert db.execute("SELECT COUNT(*) FROM predictions").fetchone() == (0,)

    # Inputs are also bounded in bytes, as in memory: bodies vary in size.
    small = Journal(tmp_path / "small.sqlite", TTL, 1000, clock=lambda: clocks.wall,
                    input_bytes=2_000)  # fmt: skip
    body = StoredInput("", b"x" * 100, {}, "v1")
    for i in range(200):
        small.input(f"link-{i}", body)
    small.prune()
    kept = [row.link for row in small.inputs()]
    assert sum(body.size for _ in kept) <= 2_000 and kept[-1] == "link-199"
    assert len(kept) >= 2_000 // body.size - 1
    small.close()
    reopened = Journal(tmp_path / "small.sqlite", TTL, 1000, clock=lambda: clocks.wall,
                       input_bytes=2_000)  # fmt: skip
    reopened.input("link-200", body)  # the running total carries on across a restart
    reopened.prune()
    assert [row.link for row in reopened.inputs()][-1] == "link-200"
    assert len(list(reopened.inputs())) == len(kept)
    assert db.execute("SELECT COUNT(*) FROM inputs").fetchone() == (0,)


def test_a_file_that_is_not_a_journal_is_an_error_not_an_empty_book(tmp_path: Path) -> None:
    path = tmp_path / "book.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="cannot use the joiner state file"):
        Journal(path, TTL, 10)
    newer = tmp_path / "newer.sqlite"
    Journal(newer, TTL, 10).close()
    db = sqlite3.connect(newer)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    with pytest.raises(JournalError, match="newer"):
        Journal(newer, TTL, 10)


def test_a_directory_or_a_device_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    with pytest.raises(JournalError, match="cannot use the joiner state file"):
        Journal(folder, TTL, 10)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    with pytest.raises(JournalError, match="not a regular file"):
        Journal(Path("/dev/null"), TTL, 10)
    assert stat.S_IMODE(Path("/dev/null").stat().st_mode) == 0o666


def test_a_file_of_an_older_layout_starts_afresh(tmp_path: Path, caplog) -> None:
    path = tmp_path / "book.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE inputs (seq INTEGER PRIMARY KEY, link TEXT, body BLOB, at REAL);"
        "INSERT INTO inputs (link, body, at) VALUES ('old', x'00', 1.0);"
    )
    db.commit()
    db.close()
    clocks = Clocks()
    with caplog.at_level("WARNING"):
        book = _book(path, clocks)
    assert "older" in caplog.text and book.restore().inputs == 0
    book.record_input("new", StoredInput("", b"{}", {}, "v1"))  # the new layout works
    assert book.journal is not None
    book.journal.close()
    assert [row.link for row in Journal(path, TTL, 10).inputs()] == ["new"]


def test_without_a_journal_restore_is_a_no_op() -> None:
    book = JoinBook()
    assert book.restore().predictions == 0
    book.record(Arm("demo", "stable", "1"), scored(v1_answer("r", [1]), "1"), None)
    _, item = book.lookup("r")
    assert item is not None
    book.mark_labelled("r", item)
    assert item.labelled


class _FullDisk:
    """A connection whose writes fail as SQLite's do when the disk is full."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    @property
    def in_transaction(self) -> bool:
        return self.real.in_transaction

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql.startswith(("INSERT", "COMMIT")):
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.execute(sql, *args)


def test_a_failing_disk_is_logged_and_the_book_goes_on_in_memory(tmp_path: Path, caplog) -> None:
    clocks = Clocks()
    book = _book(tmp_path / "book.sqlite", clocks)
    assert book.journal is not None
    book.journal._db = _FullDisk(book.journal._db)  # type: ignore[assignment]
    metrics = JoinerMetrics()
    book.journal.on_error = metrics.state_file_error
    with caplog.at_level("ERROR"):
        assert book.record(STABLE, scored(v1_answer("r", [1]), "1"), None) == "recorded"
        _, item = book.lookup("r")
        assert item is not None
        book.mark_labelled("r", item)
    assert item.labelled and book.journal.errors >= 2
    assert "database or disk is full" in caplog.text and "goes on in memory" in caplog.text
    assert len(caplog.records) == 1  # once a minute at most
    failures = {
        labels["operation"]: value
        for name, labels, value in parse_samples(generate_latest(metrics.registry).decode())
        if name == "modeldeploy_joiner_state_file_errors_total"
    }
    assert failures["write"] >= 2 and failures["pruning"] == 0  # every failure counted


def test_writes_after_close_are_dropped_quietly(tmp_path: Path) -> None:
    clocks = Clocks()
    book = _book(tmp_path / "book.sqlite", clocks)
    assert book.journal is not None
    book.journal.close()
    book.journal.close()  # twice is fine (both apps' cleanups may reach it)
    # A late event during shutdown: still recorded in memory, nothing raised or counted.
    assert book.record(STABLE, scored(v1_answer("late", [1]), "1"), None) == "recorded"
    assert book.journal.errors == 0
