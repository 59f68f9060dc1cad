"""The joiner's book on disk: what each arm predicted survives a restart of the joiner.

Labels often arrive minutes or hours after the prediction they judge. A joiner that kept
its book only in memory answered every label for a prediction made before its restart
with ``unknown_id``: a crash, an OOM kill or a rolled node threw away up to a TTL's worth of
evidence, and a label already counted could not be told from a new one. With a journal
(``--state-file``), every write to the book is also written to one SQLite file, and a new
process reads back what is still within the TTL before it opens its ports:

- the predictions per item and arm (first write wins, as in the book), with the link to
  the input the arm answered;
- which items are labelled: a label counted before the restart stays counted once (a
  repeat is a ``duplicate``, never a second count);
- the logged inputs, so pairing on label still finds them;
- each deployment's class names, so a label by name still resolves.

Writes are committed in groups (WAL, ``synchronous=NORMAL``): predictions and inputs at
most ``GROUP_WRITES`` writes or ``GROUP_DELAY_S`` after the first one waiting, and at
:meth:`Journal.flush`, which the joiner calls every ``GROUP_DELAY_S``. Measured on the
2-core development machine (2026-12-03): a request's input and prediction cost 12 us in
memory, 197 us with every write its own transaction, 49 us grouped. A process killed
mid-group loses that group's predictions: their labels are ``unknown_id``, as every one
was before there was a journal. A label's mark is committed at once, with what waits
before it, because a counted label whose mark was lost could be counted again after a
restart.

The file is bounded as memory is: rows older than the TTL are deleted as the file is
written and at start, and so are the oldest over capacity (two arms' predictions per
item, one input per request) and the oldest inputs over ``--input-bytes``. Times are
wall-clock seconds, because the monotonic clock restarts with the machine; the book's own
clock is monotonic, so on replay each entry is inserted at its age
(:meth:`modeldeploy.serving.joiner.book.JoinBook.restore`). A write that fails (a full
disk) is logged, counted (``modeldeploy_joiner_state_file_errors_total``) and the book
goes on in memory.

A file that cannot be opened or read is an error at start (the process exits and says
why) rather than a silent empty book: a platform that asked for durability should learn
that it does not have it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.serving.router.pairing import DEFAULT_INPUT_BYTES, ArmPrediction, StoredInput

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2
"""2: inputs carry ``upto`` (their running byte total), which bounds them in bytes."""
PRUNE_EVERY = 1000
"""Writes between two deletions of what is past the TTL or over capacity."""
GROUP_WRITES = 64
GROUP_DELAY_S = 0.2
"""A group of writes is committed at this size, or this long after its first write."""

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = f"""
{_META};
CREATE TABLE IF NOT EXISTS predictions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL, role TEXT NOT NULL, deployment TEXT NOT NULL,
    namespace TEXT NOT NULL, model_version TEXT NOT NULL, label TEXT NOT NULL,
    label_index INTEGER NOT NULL, link TEXT, at REAL NOT NULL,
    UNIQUE (item_id, role)
);
CREATE INDEX IF NOT EXISTS predictions_at ON predictions (at);
CREATE TABLE IF NOT EXISTS labelled (item_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS inputs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    link TEXT NOT NULL UNIQUE, path TEXT NOT NULL, body BLOB NOT NULL,
    headers TEXT NOT NULL, protocol TEXT NOT NULL, at REAL NOT NULL,
    upto INTEGER NOT NULL  -- bytes of every input written so far, this one included
);
CREATE INDEX IF NOT EXISTS inputs_at ON inputs (at);
CREATE INDEX IF NOT EXISTS inputs_upto ON inputs (upto);
CREATE TABLE IF NOT EXISTS classes (
    deployment TEXT PRIMARY KEY, names TEXT NOT NULL, count INTEGER NOT NULL
);
"""


class JournalError(RuntimeError):
    """The state file cannot be used (unreadable, not a journal, a newer schema)."""


def _owner_only(path: Path) -> None:
    """Create ``path`` if need be and make it the owner's only; refuse anything but a
    regular file (a directory named by mistake must not have its mode changed)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # a directory: IsADirectoryError
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Placed:
    """One arm's prediction for one item, as the book keeps it and the journal writes it."""

    item_id: str
    role: str
    deployment: str
    namespace: str
    prediction: ArmPrediction
    link: str | None


@dataclass(frozen=True)
class PredictionRow:
    placed: Placed
    at: float


@dataclass(frozen=True)
class InputRow:
    link: str
    stored: StoredInput
    at: float


class Journal:
    """One SQLite file holding the join book's writes (see the module docstring)."""

    def __init__(
        self,
        path: Path,
        ttl_s: float,
        capacity: int,
        clock: Callable[[], float] = time.time,
        input_bytes: int = DEFAULT_INPUT_BYTES,
    ) -> None:
        self.path = Path(path)
        self.ttl_s = ttl_s
        self.capacity = capacity
        self.input_bytes = input_bytes
        self._clock = clock
        self._writes = 0
        self._pending = 0  # writes in the open transaction
        self._pending_since = 0.0  # monotonic time of its first write
        self.errors = 0
        self._last_error_log = -60.0
        self.on_error: Callable[[str], None] | None = None
        """Told the operation of every failure (the joiner counts them on /metrics)."""
        self.closed = False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # The book holds what clients sent (the inputs for pairing): the owner only.
            # SQLite gives its -wal and -shm files the database file's mode.
            _owner_only(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_META)
            found = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if found is not None and int(found[0]) > SCHEMA_VERSION:
                raise JournalError(f"{self.path}: schema {found[0]} is newer than this joiner's "
                                   f"{SCHEMA_VERSION}")  # fmt: skip
            if found is not None and int(found[0]) < SCHEMA_VERSION:
                # An older layout: start it afresh (at most a TTL of predictions forgotten,
                # as a joiner without a state file forgets them) rather than refuse to start.
                log.warning("joiner state file %s: schema %s is older than %d; starting it "
                            "afresh", self.path, found[0], SCHEMA_VERSION)  # fmt: skip
                for table in ("predictions", "labelled", "inputs", "classes"):
                    self._db.execute(f"DROP TABLE IF EXISTS {table}")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
            (upto,) = self._db.execute("SELECT COALESCE(MAX(upto), 0) FROM inputs").fetchone()
            self._input_upto = int(upto)
        except (OSError, sqlite3.Error, ValueError) as exc:
            raise JournalError(f"cannot use the joiner state file {self.path}: {exc}") from exc

    def close(self) -> None:
        """Commit what waits and close; later writes are dropped (a late event at exit)."""
        if not self.closed:
            self.flush()
            self.closed = True
            self._db.close()

    def flush(self) -> None:
        """Commit what waits (the joiner calls it every ``GROUP_DELAY_S`` and at exit)."""
        if self._pending:
            self._pending = 0
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._failed("commit", exc)

    def _failed(self, what: str, exc: sqlite3.Error) -> None:
        """A full disk or a removed file: say so and go on from memory (the book still
        joins; only a restart would forget). Logged once a minute at most."""
        self.errors += 1
        if self.on_error is not None:
            self.on_error(what)
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:  # the file is gone or the disk fails: nothing to undo
            pass
        now = time.monotonic()
        if now - self._last_error_log >= 60:
            self._last_error_log = now
            log.error("joiner state file %s: %s failed (%d failures so far): %s; the book "
                      "goes on in memory", self.path, what, self.errors, exc)  # fmt: skip

    # --- writes -------------------------------------------------------------------------

    def prediction(self, placed: Placed) -> None:
        """One arm's prediction for one item, stamped now (first write wins here too)."""
        p = placed.prediction
        self._write(
            "INSERT OR IGNORE INTO predictions (item_id, role, deployment, namespace, "
            "model_version, label, label_index, link, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (placed.item_id, placed.role, placed.deployment, placed.namespace,
             p.model_version, p.label, p.label_index, placed.link, self._clock()),
        )  # fmt: skip

    def labelled(self, item_id: str) -> None:
        """Committed at once (the module docstring says why)."""
        self._write("INSERT OR IGNORE INTO labelled VALUES (?, ?)", (item_id, self._clock()))
        self.flush()

    def input(self, link: str, stored: StoredInput) -> None:
        self._input_upto += stored.size
        self._write(
            "INSERT OR IGNORE INTO inputs (link, path, body, headers, protocol, at, upto) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (link, stored.path, stored.body, json.dumps(dict(stored.headers)),
             stored.protocol, self._clock(), self._input_upto),
        )  # fmt: skip

    def classes(self, deployment: str, names: Mapping[int, str], count: int) -> None:
        self._write(
            "INSERT OR REPLACE INTO classes VALUES (?, ?, ?)",
            (deployment, json.dumps({str(k): v for k, v in names.items()}), count),
        )

    def now(self) -> float:
        return self._clock()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        if self.closed:
            return
        now = time.monotonic()
        try:
            if not self._pending:
                self._db.execute("BEGIN")
                self._pending_since = now
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            self._pending = 0
            self._failed("write", exc)
            return
        self._pending += 1
        self._writes += 1
        if self._pending >= GROUP_WRITES or now - self._pending_since >= GROUP_DELAY_S:
            self.flush()
        if self._writes % PRUNE_EVERY == 0:
            self.prune()

    def prune(self) -> None:
        """Delete what is past the TTL, and the oldest items and inputs over capacity."""
        self.flush()
        cutoff = self._clock() - self.ttl_s
        try:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM predictions WHERE at < ?", (cutoff,))
            self._db.execute("DELETE FROM inputs WHERE at < ?", (cutoff,))
            self._db.execute("DELETE FROM labelled WHERE at < ?", (cutoff,))
            # Over capacity, the oldest rows go, by sequence (an index range, no scan): two
            # rows per item (stable and canary) for the predictions, one per input.
            self._db.execute(
                "DELETE FROM predictions WHERE seq <= (SELECT MAX(seq) FROM predictions) - ?",
                (2 * self.capacity,),
            )
            self._db.execute(
                "DELETE FROM inputs WHERE seq <= (SELECT MAX(seq) FROM inputs) - ?",
                (self.capacity,),
            )
            # And over the bytes the book keeps in memory (``--input-bytes``): bodies vary
            # in size, so a count alone would not bound the file (nor its volume).
            self._db.execute(
                "DELETE FROM inputs WHERE upto <= (SELECT MAX(upto) FROM inputs) - ?",
                (self.input_bytes,),
            )
            self._db.execute(
                "DELETE FROM labelled WHERE item_id NOT IN (SELECT item_id FROM predictions)"
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._failed("pruning", exc)

    # --- reads (at start) ---------------------------------------------------------------

    def predictions(self) -> Iterator[PredictionRow]:
        """The predictions within the TTL, oldest first (the order they were written)."""
        rows = self._db.execute(
            "SELECT item_id, role, deployment, namespace, model_version, label, label_index, "
            "link, at FROM predictions WHERE at >= ? ORDER BY seq",
            (self._clock() - self.ttl_s,),
        )
        for item_id, role, deployment, namespace, version, label, index, link, at in rows:
            prediction = ArmPrediction(version, label, int(index))
            yield PredictionRow(Placed(item_id, role, deployment, namespace, prediction, link), at)

    def labelled_ids(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT item_id FROM labelled")}

    def inputs(self) -> Iterator[InputRow]:
        """The logged inputs within the TTL, oldest first."""
        rows = self._db.execute(
            "SELECT link, path, body, headers, protocol, at FROM inputs WHERE at >= ? ORDER BY seq",
            (self._clock() - self.ttl_s,),
        )
        for link, path, body, headers, protocol, at in rows:
            yield InputRow(link, StoredInput(path, bytes(body), json.loads(headers), protocol), at)

    def class_names(self) -> Iterator[tuple[str, dict[int, str], int]]:
        for deployment, names, count in self._db.execute("SELECT * FROM classes"):
            yield deployment, {int(k): v for k, v in json.loads(names).items()}, int(count)
