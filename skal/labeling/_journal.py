"""The SQLite journal of a labelling session: every answer, committed durably before it is
acknowledged, and nothing but plain data (no pickles), so reopening it never runs code."""

import contextlib
import hashlib
import json
import os
import sqlite3
import time

import numpy as np

from skal.strategies._base import column_layout, is_dask_pool, map_pool_blocks, position_keys

# Version 1: meta, rounds, queries, answers. Version 2 adds the table of synthesised samples
# (their features as JSON text); a journal moves to it when its first synthesised sample is
# recorded, so journals without any stay readable by earlier skal versions.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    round INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    annotator TEXT NOT NULL,
    strategy TEXT NOT NULL,
    trained_through INTEGER NOT NULL,
    issued_after INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS queries (
    round INTEGER NOT NULL REFERENCES rounds(round),
    position INTEGER NOT NULL,
    sample_id TEXT NOT NULL,
    score REAL,
    PRIMARY KEY (round, position)
);
CREATE TABLE IF NOT EXISTS answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id TEXT NOT NULL,
    label TEXT,
    skipped INTEGER NOT NULL DEFAULT 0 CHECK (skipped IN (0, 1)),
    annotator TEXT NOT NULL,
    time REAL NOT NULL,
    round INTEGER,
    strategy TEXT,
    score REAL,
    undone INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),
    undone_time REAL,
    CHECK ((skipped = 1) = (label IS NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS one_live_answer
    ON answers (sample_id, annotator) WHERE undone = 0;
"""

_STATEMENTS = [s.strip() for s in _SCHEMA.split(";") if s.strip()]

_SYNTHETIC_TABLE = """CREATE TABLE IF NOT EXISTS synthetic (
    sample_id TEXT PRIMARY KEY,
    features TEXT NOT NULL,
    round INTEGER NOT NULL REFERENCES rounds(round),
    time REAL NOT NULL
)"""

# What to tell a user whose journal is damaged. Writing to it could make things worse.
_CORRUPT_ADVICE = (
    "restore the journal from a backup, or salvage what is readable with the sqlite3 shell "
    "(sqlite3 BROKEN.sqlite .recover | sqlite3 NEW.sqlite) and use the new file; do not "
    "label into the damaged one"
)


def _schema_objects(conn):
    """The schema as a set of (type, name, table, normalised SQL), SQLite's own statistics
    tables left out (``ANALYZE`` makes them; they hold no code and change no data)."""
    return {
        (kind, name, table, None if sql is None else " ".join(sql.split()))
        for kind, name, table, sql in conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
        )
        if not name.startswith("sqlite_stat")
    }


def _expected_schemas():
    """``{version: the exact objects skal creates}``, as SQLite records them (built once)."""
    global _EXPECTED_SCHEMAS
    if _EXPECTED_SCHEMAS is None:
        schemas = {}
        for version, statements in ((1, _STATEMENTS), (2, [*_STATEMENTS, _SYNTHETIC_TABLE])):
            conn = sqlite3.connect(":memory:")
            try:
                for statement in statements:
                    conn.execute(statement)
                schemas[version] = frozenset(_schema_objects(conn))
            finally:
                conn.close()
        _EXPECTED_SCHEMAS = schemas
    return _EXPECTED_SCHEMAS


_EXPECTED_SCHEMAS = None


def encode_features(row):
    """JSON text of a row of numbers (any shape): plain data, exact for float64 values."""
    values = np.asarray(row, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("A synthesised sample holds NaN or infinite features.")
    return json.dumps({"shape": list(values.shape), "values": values.ravel().tolist()})


def decode_features(text):
    data = json.loads(text)
    return np.asarray(data["values"], dtype=np.float64).reshape(data["shape"])


def synthetic_id(features_text):
    """The id of a synthesised sample: ``"synth-"`` and 16 hex digits of its features' hash,
    so the same row always gets the same id (a resumed session recognises its own)."""
    return "synth-" + hashlib.sha256(features_text.encode()).hexdigest()[:16]


class JournalError(OSError):
    """The journal cannot be opened or written (read-only path, disk full, corrupt file).

    Raised before anything is acknowledged: an answer that raised this was not recorded.
    """


class PoolMismatchError(ValueError):
    """The journal was written for a different pool (its fingerprint does not match)."""


class AlreadyAnsweredError(ValueError):
    """The annotator has already answered this sample (e.g. from a concurrent session)."""


def encode_label(label):
    """JSON text of a label, keeping ints, floats, strings and bools apart."""
    if isinstance(label, np.generic):
        label = label.item()
    if label is not None and not isinstance(label, bool | int | float | str):
        raise TypeError(
            f"Labels must be int, float, str or bool to be journalled, got "
            f"{type(label).__name__}."
        )
    return json.dumps(label)


def decode_label(text):
    return None if text is None else json.loads(text)


def pool_fingerprint(sample_ids, X_pool):
    """A SHA-256 digest of the pool's ids (in order) and its data.

    Two pools with the same ids but different feature values, or the same values under other
    ids, get different fingerprints.

    Parameters
    ----------
    sample_ids : sequence of str
    X_pool : array-like, DataFrame or list

    Returns
    -------
    fingerprint : str
        64 hexadecimal digits.
    """
    digest = hashlib.sha256()
    for sample_id in sample_ids:
        digest.update(str(sample_id).encode())
        digest.update(b"\x00")
    digest.update(b"\x01data\x01")
    if is_dask_pool(X_pool):
        digest.update(_dask_pool_digest(X_pool))
    elif hasattr(X_pool, "iloc"):
        from pandas.util import hash_pandas_object

        digest.update(np.asarray(hash_pandas_object(X_pool, index=False)).tobytes())
        digest.update(repr(list(X_pool.columns)).encode())
    elif hasattr(X_pool, "tocsr"):
        X = X_pool.tocsr()
        for part in (X.data, X.indices, X.indptr, np.asarray(X.shape)):
            digest.update(np.ascontiguousarray(part).tobytes())
    else:
        X = np.asarray(X_pool)
        if X.dtype.kind == "O":
            digest.update(repr(X.tolist()).encode())
        else:
            digest.update(str((X.dtype.str, X.shape)).encode())
            digest.update(np.ascontiguousarray(X).tobytes())
    return digest.hexdigest()


def _dask_pool_digest(X_pool):
    """8 bytes that stand for a dask pool's data, computed where its blocks live.

    Every row's hash is mixed with its pool position and the results are added modulo
    2**64: a sum does not depend on how the rows are split into blocks, so the pool
    re-read with other partitions keeps its fingerprint, and only 8 bytes per block travel.
    """
    sums = map_pool_blocks(_block_digest, X_pool, None)
    total = sum(int(part) for part in sums) % 2**64
    layout = column_layout(X_pool)
    columns = list(layout.columns) if hasattr(layout, "columns") else X_pool.dtype.str
    return repr((total, columns, X_pool.shape[1:])).encode()


def _block_digest(_, block, start):
    import pandas as pd
    from pandas.util import hash_pandas_object

    frame = block if hasattr(block, "iloc") else pd.DataFrame(np.asarray(block).reshape(
        len(block), -1))
    hashes = np.asarray(hash_pandas_object(frame, index=False), dtype=np.uint64)
    keys = position_keys(hashes, np.arange(start, start + hashes.size))
    return np.add.reduce(keys, dtype=np.uint64)


class Journal:
    """An append-only record of queries and answers in one SQLite file.

    WAL mode with ``synchronous=FULL``: once :meth:`add_answer` returns, the answer survives a
    killed process and a power cut. Several processes may write the same journal; writes are
    serialised by SQLite's lock (``BEGIN IMMEDIATE``), and one live answer per (sample,
    annotator) is enforced by a unique index.

    Parameters
    ----------
    path : str or path-like
        The database file; created when missing.
    timeout : float, default=30.0
        Seconds to wait for another process's write lock.
    """

    def __init__(self, path, timeout=30.0):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"The journal's directory {directory!r} does not exist.")
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing is implicit.
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(
                    f"Could not put the journal {self.path!r} in WAL mode (got {mode!r}); is "
                    "it on a network file system?"
                )
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._check_pages()
            self._create_or_check_schema()
        except sqlite3.DatabaseError as exc:
            self._close_quietly()
            raise JournalError(_explain(exc, self.path, "open")) from exc
        except BaseException:
            self._close_quietly()
            raise

    def _check_pages(self):
        # Damage anywhere in the file is found now, not when a later read reaches that page.
        problems = [row[0] for row in self._conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise JournalError(
                f"The journal {self.path!r} is corrupt ({'; '.join(problems[:3])}). To go "
                f"on: {_CORRUPT_ADVICE}."
            )

    def _create_or_check_schema(self):
        """Create the tables in a new file; in an existing one, demand exactly skal's.

        Any other object is refused: a trigger, view or index skal did not create could
        delete or rewrite answers that :meth:`add_answer` has acknowledged.
        """
        conn = self._conn
        with self.reading("open") as snapshot:
            found = _schema_objects(snapshot)
        if not found:
            conn.execute("BEGIN IMMEDIATE")  # two processes creating at once: one wins
            try:
                if not _schema_objects(conn):
                    for statement in _STATEMENTS:
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            found = _schema_objects(conn)
        schemas = _expected_schemas()
        # The version closest to what is there, for the message when nothing matches.
        version = max(schemas, key=lambda v: (found == schemas[v], len(found & schemas[v])))
        expected = schemas[version]
        if found != expected:
            have = {obj[:2]: obj for obj in found}  # (type, name) -> the object
            want = {obj[:2]: obj for obj in expected}
            groups = (
                ("not made by skal", sorted(have.keys() - want.keys())),
                ("changed", sorted(k for k in have.keys() & want.keys() if have[k] != want[k])),
                ("missing", sorted(want.keys() - have.keys())),
            )
            parts = [
                f"{label}: " + ", ".join(f"{kind} {name!r}" for kind, name in keys)
                for label, keys in groups
                if keys
            ]
            raise JournalError(
                f"The journal {self.path!r} holds schema objects skal did not create "
                f"({'; '.join(parts)}). They could change or delete recorded answers, so the "
                "journal is refused. To go on: open it with the sqlite3 shell and drop them "
                "(e.g. DROP TRIGGER name), or restore the journal from a backup."
            )

    # ------------------------------------------------------------------ lifecycle
    def close(self):
        self._close_quietly()

    def _close_quietly(self):
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except sqlite3.Error:
                pass
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def connection(self):
        """The underlying ``sqlite3.Connection`` (for pragmas and checks)."""
        return self._conn

    # ------------------------------------------------------------------ writing
    def _write(self, what, func):
        """Run ``func(conn)`` inside one immediate transaction, committed durably."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = func(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            raise JournalError(_explain(exc, self.path, what)) from exc
        return result

    def check_or_set_meta(self, values):
        """Store ``values`` (a dict of JSON-able) if the journal is new; else return the stored.

        Returns
        -------
        stored : dict
            The meta data after the call.
        """

        def do(conn):
            rows = conn.execute("SELECT key, value FROM meta").fetchall()
            if not rows:
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in values.items()],
                )
                return dict(values)
            return self._decode_meta(rows)

        return self._write("initialise", do)

    def meta(self):
        with self.reading("read the meta data") as conn:
            rows = conn.execute("SELECT key, value FROM meta").fetchall()
        return self._decode_meta(rows)

    def _decode_meta(self, rows):
        out = {}
        for key, text in rows:
            try:
                out[key] = json.loads(text)
            except ValueError:
                raise JournalError(
                    f"The journal {self.path!r} is damaged: its meta data {key!r} holds "
                    f"{text!r}, which is not JSON. To go on: {_CORRUPT_ADVICE}."
                ) from None
        return out

    def add_round(self, annotator, strategy, trained_through, issued_after, sample_ids, scores,
                  synthetic=None):
        """Record a batch handed to an annotator; return its round number.

        ``trained_through`` is the last answer id the proposing model was trained on,
        ``issued_after`` the last answer id when the batch is handed out. ``synthetic`` maps
        the ids of synthesised samples in the batch to their features' JSON text
        (:func:`encode_features`); they are stored in the same transaction as the round
        (the journal moves to schema version 2 with the first of them), so a batch is never
        recorded without the features of its synthesised samples, nor the other way round.
        """

        def do(conn):
            (last,) = conn.execute("SELECT COALESCE(MAX(round), -1) FROM rounds").fetchone()
            number = last + 1
            conn.execute(
                "INSERT INTO rounds (round, time, annotator, strategy, trained_through, "
                "issued_after) VALUES (?, ?, ?, ?, ?, ?)",
                (number, time.time(), annotator, strategy, int(trained_through),
                 int(issued_after)),
            )
            conn.executemany(
                "INSERT INTO queries (round, position, sample_id, score) VALUES (?, ?, ?, ?)",
                [
                    (number, pos, sid, None if score is None else float(score))
                    for pos, (sid, score) in enumerate(zip(sample_ids, scores, strict=True))
                ],
            )
            if synthetic:
                if not _has_synthetic_table(conn):
                    conn.execute(_SYNTHETIC_TABLE)
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'",
                                 (json.dumps(2),))
                # An id is the hash of its features: one already there is the same sample.
                conn.executemany(
                    "INSERT OR IGNORE INTO synthetic (sample_id, features, round, time) "
                    "VALUES (?, ?, ?, ?)",
                    [(sid, text, number, time.time()) for sid, text in synthetic.items()],
                )
            return number

        return self._write("record a query", do)

    def add_answer(self, sample_id, label, annotator, *, skipped=False, round=None,
                   strategy=None, score=None):
        """Commit one answer (a label, or a skip) and return its id.

        Raises
        ------
        AlreadyAnsweredError
            The annotator already has a live answer for this sample.
        JournalError
            The write failed (read-only, disk full); nothing was recorded.
        """
        text = None if skipped else encode_label(label)

        def do(conn):
            cursor = conn.execute(
                "INSERT INTO answers (sample_id, label, skipped, annotator, time, round, "
                "strategy, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (str(sample_id), text, int(bool(skipped)), annotator, time.time(), round,
                 strategy, None if score is None else float(score)),
            )
            return cursor.lastrowid

        try:
            return self._write("record an answer", do)
        except sqlite3.IntegrityError as exc:
            raise AlreadyAnsweredError(
                f"Annotator {annotator!r} has already answered sample {sample_id!r}; undo "
                "that answer first to change it."
            ) from exc

    def undo_last(self, annotator):
        """Mark the annotator's most recent live answer as undone; return it (or None)."""

        def do(conn):
            row = conn.execute(
                "SELECT id, sample_id FROM answers WHERE annotator = ? AND undone = 0 "
                "ORDER BY id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE answers SET undone = 1, undone_time = ? WHERE id = ?",
                (time.time(), row[0]),
            )
            return {"id": row[0], "sample_id": row[1]}

        return self._write("undo an answer", do)

    # ------------------------------------------------------------------ reading
    @contextlib.contextmanager
    def reading(self, what="read"):
        """One read transaction: every SELECT inside sees the same snapshot of the journal.

        Reads that belong together (the rounds and their queries, the answers and the rounds)
        must go in one, or a writer committing between two SELECTs makes them disagree. In
        WAL mode a deferred ``BEGIN`` takes its snapshot at the first SELECT and keeps it
        until ``COMMIT``. Nested uses (and reads inside a write) join the outer transaction.
        """
        conn = self._conn
        if conn.in_transaction:
            yield conn
            return
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise JournalError(_explain(exc, self.path, what)) from exc

    def data_version(self):
        """Changes whenever another connection commits (``PRAGMA data_version``)."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def answers(self, include_undone=False):
        """All answers as dicts, oldest first."""
        query = (
            "SELECT id, sample_id, label, skipped, annotator, time, round, strategy, score, "
            "undone FROM answers"
        )
        if not include_undone:
            query += " WHERE undone = 0"
        with self.reading("read the answers") as conn:
            rows = conn.execute(query + " ORDER BY id").fetchall()
        keys = ("id", "sample_id", "label", "skipped", "annotator", "time", "round",
                "strategy", "score", "undone")
        out = []
        for row in rows:
            record = dict(zip(keys, row, strict=True))
            try:
                record["label"] = decode_label(record["label"])
            except ValueError:
                raise JournalError(
                    f"The journal {self.path!r} is damaged: answer {record['id']} (sample "
                    f"{record['sample_id']!r}) holds the label {record['label']!r}, which is "
                    f"not JSON. To go on: {_CORRUPT_ADVICE}, or correct that answer's label "
                    "with the sqlite3 shell."
                ) from None
            record["skipped"] = bool(record["skipped"])
            record["undone"] = bool(record["undone"])
            out.append(record)
        return out

    def rounds(self):
        """All rounds as dicts with their queried ``sample_ids`` and ``scores``."""
        with self.reading("read the rounds") as conn:
            round_rows = conn.execute(
                "SELECT round, time, annotator, strategy, trained_through, issued_after "
                "FROM rounds ORDER BY round"
            ).fetchall()
            query_rows = conn.execute(
                "SELECT round, sample_id, score FROM queries ORDER BY round, position"
            ).fetchall()
        rounds = {
            r[0]: {"round": r[0], "time": r[1], "annotator": r[2], "strategy": r[3],
                   "trained_through": r[4], "issued_after": r[5], "sample_ids": [],
                   "scores": []}
            for r in round_rows
        }
        for number, sample_id, score in query_rows:
            rounds[number]["sample_ids"].append(sample_id)
            rounds[number]["scores"].append(score)
        return list(rounds.values())

    def synthetic(self):
        """The synthesised samples, oldest first: a list of ``(sample_id, features_text)``."""
        with self.reading("read the synthesised samples") as conn:
            if not _has_synthetic_table(conn):
                return []
            return conn.execute(
                "SELECT sample_id, features FROM synthetic ORDER BY rowid"
            ).fetchall()

    def max_answer_id(self):
        """The id of the latest answer, undone ones included (0 for none)."""
        with self.reading("read the answers") as conn:
            (value,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM answers").fetchone()
        return value

    def integrity_check(self):
        """``PRAGMA integrity_check``: ``"ok"`` for a sound file."""
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]


def _has_synthetic_table(conn):
    return conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'synthetic'"
    ).fetchone() is not None


def _explain(exc, path, what):
    text = str(exc)
    advice = None
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        reason = "the path is not writable (read-only file or directory?)"
        advice = "make the journal and its directory writable, or work on a writable copy"
    elif "full" in text:
        reason = "the disk (or the journal's size limit) is full"
        advice = "free some space and retry; the answers recorded before are intact"
    elif "not a database" in text or "malformed" in text:
        reason = "the file is not a skal journal or is corrupt"
        advice = f"check the path; if it is your journal, {_CORRUPT_ADVICE}"
    elif "locked" in text or "busy" in text:
        reason = "another process held the journal's lock too long"
        advice = "retry, or give a longer timeout"
    else:
        reason = text
    message = f"Could not {what} in journal {path!r}: {reason} ({text}). Nothing was recorded."
    return message if advice is None else f"{message} To go on: {advice}."
