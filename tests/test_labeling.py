"""Labelling sessions: durability under SIGKILL, concurrent writers, bad input, resume, and
aggregation of several annotators."""

import csv
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from skal import ActiveLearner
from skal._cli import main
from skal.labeling import (
    AlreadyAnsweredError,
    DawidSkene,
    Journal,
    JournalError,
    LabelingSession,
    PoolMismatchError,
    UnknownSampleError,
    disagreement,
    load_checkpoint,
    majority_vote,
)
from skal.strategies import EntropySampling, RandomSampling
from skal.strategies._base import QueryStrategy

X, Y = make_classification(
    n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=0
)
IDS = [f"row-{i:04d}" for i in range(len(Y))]
ORACLE = dict(zip(IDS, Y.tolist(), strict=True))
CLASSES = [0, 1, 2]


def open_session(path, **kwargs):
    params = dict(classes=CLASSES, sample_ids=IDS, batch_size=5, random_state=0)
    params.update(kwargs)
    learner = params.pop("learner", ActiveLearner(LogisticRegression(max_iter=200)))
    return LabelingSession(learner, X, path, **params)


def label_rounds(session, n_rounds):
    """Answer ``n_rounds`` batches with the oracle; return the batches' ids."""
    batches = []
    for _ in range(n_rounds):
        batch = session.next_batch()
        batches.append([q.sample_id for q in batch])
        for query in batch:
            session.label(query.sample_id, ORACLE[query.sample_id])
    return batches


def live_labels(path):
    with Journal(path) as journal:
        assert journal.integrity_check() == "ok"
        return {(a["sample_id"], a["annotator"]): a["label"] for a in journal.answers()}


# ---------------------------------------------------------------------- durability
def _fork_labeller(path, wfd, query_ahead):
    """In a forked child: label through the session, acknowledging each committed label."""
    try:
        with open_session(path, query_ahead=query_ahead) as session:
            while True:
                batch = session.next_batch()
                if not batch:
                    break
                for query in batch:
                    session.label(query.sample_id, ORACLE[query.sample_id])
                    os.write(wfd, f"{query.sample_id} {ORACLE[query.sample_id]}\n".encode())
    finally:
        os._exit(0)


def _kill_child_after(path, delay, query_ahead=False):
    """Fork a labeller, SIGKILL it after ``delay`` seconds, return the labels it acked."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(rfd)
        _fork_labeller(path, wfd, query_ahead)
    os.close(wfd)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    chunks = []
    while chunk := os.read(rfd, 65536):
        chunks.append(chunk)
    os.close(rfd)
    acked = {}
    for line in b"".join(chunks).decode().splitlines():
        sid, label = line.split()
        acked[sid] = int(label)
    return acked


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_acknowledged_label(tmp_path):
    path = tmp_path / "journal.sqlite"
    rng = random.Random(0)
    all_acked = {}
    n_kills = 40
    for i in range(n_kills):
        acked = _kill_child_after(path, rng.uniform(0.02, 0.5), query_ahead=i % 2 == 1)
        all_acked.update(acked)
        stored = live_labels(path)  # also PRAGMA integrity_check
        for sid, label in all_acked.items():
            assert stored[(sid, "annotator")] == label, f"acknowledged label of {sid} lost"
    assert len(all_acked) > n_kills  # the children did get to write
    # Reopening rebuilds the labelled set exactly and refits on it.
    with open_session(path) as session:
        assert session.labels() == {sid: ORACLE[sid] for sid in session.labels()}
        assert set(all_acked) <= set(session.labels())
        assert session.learner_.n_labels_ == session.n_labels_


_CONCURRENT_CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_labeling import open_session, ORACLE
    from skal.labeling import AlreadyAnsweredError
    with open_session({path!r}, batch_size=4) as session:
        n = 0
        while n < 32:
            batch = session.next_batch()
            if not batch:
                break
            for query in batch:
                try:
                    session.label(query.sample_id, ORACLE[query.sample_id])
                except AlreadyAnsweredError:
                    print("DUP", query.sample_id, flush=True)
                    continue
                print("ACK", query.sample_id, flush=True)
                n += 1
                if n == 32:  # a duplicate earlier must not let the count run past 32
                    break
    """
)


@pytest.mark.slow  # two labelling processes on one journal, end to end
def test_two_processes_labelling_one_journal_lose_nothing(tmp_path):
    path = str(tmp_path / "journal.sqlite")
    open_session(path).close()  # create it, so both children see the same journal
    script = _CONCURRENT_CHILD.format(tests=os.path.dirname(__file__), path=path)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    acked = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        acked += [line.split()[1] for line in out.splitlines() if line.startswith("ACK")]
    assert len(acked) == 64
    assert len(set(acked)) == len(acked), "one sample labelled twice by the same annotator"
    with Journal(path) as journal:
        assert journal.integrity_check() == "ok"
        answers = journal.answers(include_undone=True)
    ids = [a["id"] for a in answers]
    assert len(set(ids)) == len(ids)
    assert sorted(a["sample_id"] for a in answers) == sorted(acked)


# ---------------------------------------------------------------------- resume
@pytest.mark.parametrize("query_ahead", [False, True])
def test_resume_gives_the_same_queries_as_an_uninterrupted_run(tmp_path, query_ahead):
    with open_session(tmp_path / "straight.sqlite", query_ahead=query_ahead) as session:
        straight = label_rounds(session, 8)
        straight_next = [q.sample_id for q in session.next_batch()]
    # Interrupted twice: once cleanly mid-batch, once abandoned without close().
    path = tmp_path / "interrupted.sqlite"
    session = open_session(path, query_ahead=query_ahead)
    label_rounds(session, 3)
    batch = session.next_batch()
    session.label(batch[0].sample_id, ORACLE[batch[0].sample_id])
    session.close()
    session = open_session(path, query_ahead=query_ahead, random_state=None)
    assert [q.sample_id for q in session.next_batch()] == straight[3][1:]
    label_rounds(session, 3)
    del session  # abandoned, as by a crash: only the journal survives
    with open_session(path, query_ahead=query_ahead) as session:
        label_rounds(session, 2)
        resumed_next = [q.sample_id for q in session.next_batch()]
        assert [r["sample_ids"] for r in session.history_][:8] == straight
    assert resumed_next == straight_next


def test_resume_after_sigkill_gives_the_same_history(tmp_path):
    with open_session(tmp_path / "straight.sqlite") as session:
        straight = label_rounds(session, 10)
    path = tmp_path / "killed.sqlite"
    _kill_child_after(path, 0.5)
    with open_session(path) as session:
        while len(session.history_) < 10 or session.pending():
            batch = session.next_batch()
            for query in batch:
                session.label(query.sample_id, ORACLE[query.sample_id])
        assert [r["sample_ids"] for r in session.history_][:10] == straight


def test_reopening_rebuilds_labels_history_and_model(tmp_path):
    path = tmp_path / "j.sqlite"
    with open_session(path) as session:
        label_rounds(session, 4)
        session.skip(session.next_batch()[0].sample_id)
        labels, history = session.labels(), session.history_
        proba = session.learner_.predict_proba(X[:5])
    with open_session(path) as session:
        assert session.labels() == labels
        assert session.history_ == history
        np.testing.assert_allclose(session.learner_.predict_proba(X[:5]), proba)
        assert len(session.pending()) == 4


def test_the_journal_holds_plain_data_only(tmp_path):
    path = tmp_path / "j.sqlite"
    with open_session(path) as session:
        label_rounds(session, 3)
    conn = sqlite3.connect(path)
    for table, column in [("answers", "label"), ("meta", "value"), ("queries", "sample_id")]:
        kinds = {k for (k,) in conn.execute(f"SELECT DISTINCT typeof({column}) FROM {table}")}
        assert kinds <= {"text", "null"}
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = conn.execute(
        "SELECT sample_id, annotator, round, strategy, score FROM answers WHERE round = 2"
    ).fetchone()
    assert row[1] == "annotator" and row[2] == 2 and row[3] == "MarginSampling"
    assert row[4] is not None
    conn.close()


# ---------------------------------------------------------------------- bad input
def test_unknown_sample_id_is_one_clear_error(tmp_path):
    with open_session(tmp_path / "j.sqlite") as session:
        label_rounds(session, 1)
        before = session.labels()
        with pytest.raises(UnknownSampleError, match="Unknown sample id 'row-9999'"):
            session.label("row-9999", 0)
        with pytest.raises(KeyError):
            session.skip(3)
        assert session.labels() == before


def test_label_outside_the_class_set_is_refused(tmp_path):
    with open_session(tmp_path / "j.sqlite") as session:
        label_rounds(session, 1)
        before = session.labels()
        for bad in (3, "0", None, [0]):
            with pytest.raises(ValueError, match="not one of the classes"):
                session.label(IDS[-1], bad)
        assert session.labels() == before
    assert len(live_labels(tmp_path / "j.sqlite")) == 5


def test_a_journal_from_another_pool_is_detected(tmp_path):
    path = tmp_path / "j.sqlite"
    with open_session(path) as session:
        label_rounds(session, 1)
    X_other = X.copy()
    X_other[7, 2] += 1e-9
    for kwargs in ({}, {"sample_ids": IDS[::-1]}):
        with pytest.raises(PoolMismatchError, match="another pool"):
            LabelingSession(None, X_other if not kwargs else X, path, classes=CLASSES,
                            **({"sample_ids": IDS} | kwargs))
    with pytest.raises(ValueError, match="differ from the journal"):
        open_session(path, classes=[0, 1, 2, 3])
    assert len(live_labels(path)) == 5


def test_a_file_that_is_not_a_journal_is_refused(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database " * 100)
    with pytest.raises(JournalError, match="not a skal journal"):
        open_session(path)


def _make_read_only(directory):
    os.chmod(directory, 0o555)
    if os.geteuid() == 0:  # root ignores permissions; the immutable flag still binds it
        subprocess.run(["chattr", "+i", str(directory)], capture_output=True)
    try:
        (directory / "probe").touch()
    except OSError:
        return
    os.remove(directory / "probe")
    _make_writable(directory)
    pytest.skip("cannot make a read-only directory here")


def _make_writable(directory):
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(directory)], capture_output=True)
    os.chmod(directory, 0o755)


def test_read_only_directory_is_one_clear_error_and_loses_nothing(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    existing = directory / "old.sqlite"
    with open_session(existing) as session:
        label_rounds(session, 2)
    before = live_labels(existing)
    _make_read_only(directory)
    try:
        with pytest.raises(JournalError, match="not writable"):
            open_session(directory / "new.sqlite")
        with pytest.raises(JournalError, match="Nothing was recorded"):
            open_session(existing)
        with pytest.raises(FileNotFoundError, match="does not exist"):
            open_session(tmp_path / "missing" / "j.sqlite")
    finally:
        _make_writable(directory)
    assert live_labels(existing) == before


def test_full_disk_is_one_clear_error_and_loses_nothing(tmp_path):
    path = tmp_path / "j.sqlite"
    session = open_session(path)
    conn = session.journal.connection
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    # Simulate a full disk: the database may not grow beyond its current size.
    conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    acked = []
    with pytest.raises(JournalError, match="full"):
        for sid in IDS:
            session.label(sid, ORACLE[sid], annotator="x" * 2000)
            acked.append(sid)
    assert acked  # some fitted before the limit
    assert set(session.labels()) == set(acked)
    session.close()
    assert {sid for sid, _ in live_labels(path)} == set(acked)


def test_empty_pool_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="pool is empty"):
        LabelingSession(None, np.zeros((0, 3)), tmp_path / "j.sqlite", classes=[0, 1])
    with pytest.raises(ValueError, match="unique"):
        LabelingSession(None, X[:3], tmp_path / "k.sqlite", classes=[0, 1],
                        sample_ids=["a", "a", "b"])


def test_exhausted_pool_gives_an_empty_batch(tmp_path):
    with LabelingSession(None, X[:7], tmp_path / "j.sqlite", classes=CLASSES,
                         batch_size=3, random_state=0) as session:
        rounds = 0
        while batch := session.next_batch():
            rounds += 1
            for query in batch:
                session.label(query.sample_id, int(Y[int(query.sample_id)]))
        assert rounds == 3 and session.n_labels_ == 7


# ---------------------------------------------------------------------- answers
def test_skip_and_undo(tmp_path):
    with open_session(tmp_path / "j.sqlite") as session:
        first, second, *_ = session.next_batch()
        session.label(first.sample_id, 0)
        session.skip(second.sample_id)
        assert session.undo() == second.sample_id
        assert session.undo() == first.sample_id
        assert session.undo() is None
        assert [q.sample_id for q in session.next_batch()][:2] == [
            first.sample_id, second.sample_id]
        session.label(first.sample_id, 1)
        with pytest.raises(AlreadyAnsweredError):
            session.label(first.sample_id, 2)
        assert session.labels() == {first.sample_id: 1}


def test_query_ahead_proposes_while_a_batch_is_labelled(tmp_path):
    with open_session(tmp_path / "j.sqlite", query_ahead=True,
                      learner=ActiveLearner(query_strategy=EntropySampling())) as session:
        label_rounds(session, 3)
        assert session._ahead is not None  # round 4 is being computed already
        batch = session.next_batch()
        history = session.history_
        assert history[-1]["trained_through"] < history[-1]["issued_after"]
        assert history[-1]["strategy"] == "EntropySampling"
        assert not set(q.sample_id for q in batch) & set(session.labels())


def test_checkpoints_need_explicit_trust(tmp_path):
    with open_session(tmp_path / "j.sqlite") as session:
        label_rounds(session, 3)
        path = session.save_checkpoint(tmp_path / "model.joblib")
        with pytest.raises(ValueError, match="arbitrary code"):
            load_checkpoint(path)
        model = load_checkpoint(path, trusted=True, session=session)
        np.testing.assert_allclose(model.predict_proba(X[:3]),
                                   session.learner_.predict_proba(X[:3]))


# ---------------------------------------------------------------------- several annotators
def simulate_annotators(confusions, truth, rng, missing=0.2):
    labels = np.array([
        [rng.choice(len(c), p=c[k]) for c in confusions] for k in truth
    ])
    labels[rng.random(labels.shape) < missing] = -1
    return labels


def test_dawid_skene_recovers_known_confusion_matrices():
    rng = np.random.default_rng(0)
    truth = rng.choice(3, size=3000, p=[0.5, 0.3, 0.2])
    confusions = np.array([
        np.eye(3) * 0.85 + 0.05,
        np.eye(3) * 0.45 + 0.5 / 3 + 0.0 * np.ones(3),
        [[0.5, 0.5, 0.0], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
        [[0.9, 0.05, 0.05], [0.3, 0.6, 0.1], [0.0, 0.2, 0.8]],
        np.full((3, 3), 1 / 3),  # a spammer
    ])
    confusions = confusions / confusions.sum(axis=2, keepdims=True)
    labels = simulate_annotators(confusions, truth, rng)
    model = DawidSkene().fit(labels)
    assert np.abs(model.confusion_ - confusions).max() < 0.06
    np.testing.assert_allclose(model.priors_, [0.5, 0.3, 0.2], atol=0.03)
    np.testing.assert_allclose(model.posterior_.sum(axis=1), 1.0)
    vote = majority_vote(labels, random_state=0)
    assert (model.labels_ == truth).mean() > (vote == truth).mean() + 0.03


def test_majority_vote_and_disagreement_by_hand():
    labels = np.array([["a", "a", "b"], ["b", None, "b"], [None, None, None]], dtype=object)
    assert majority_vote(labels, missing_label=None).tolist() == ["a", "b", None]
    np.testing.assert_allclose(disagreement(labels, missing_label=None), [1 / 3, 0, 0])
    with pytest.raises(ValueError, match="not among the classes"):
        majority_vote([[0, 5]], classes=[0, 1])


def test_several_annotators_requery_disagreements(tmp_path):
    path = tmp_path / "j.sqlite"
    alice = open_session(path, annotator="alice", labels_per_sample=2,
                         requery_disagreements=True)
    bob = open_session(path, annotator="bob", labels_per_sample=2,
                       requery_disagreements=True)
    batch = alice.next_batch()
    for q in batch:
        alice.label(q.sample_id, ORACLE[q.sample_id])
    # Bob is asked for alice's samples first (redundancy), and disagrees on one.
    bob_batch = bob.next_batch()
    assert [q.sample_id for q in bob_batch] == [q.sample_id for q in batch]
    assert {q.strategy for q in bob_batch} == {"redundancy"}
    bob.label(batch[0].sample_id, (ORACLE[batch[0].sample_id] + 1) % 3)
    for q in bob_batch[1:]:
        bob.label(q.sample_id, ORACLE[q.sample_id])
    carol = open_session(path, annotator="carol", requery_disagreements=True)
    first = carol.next_batch()[0]
    assert first.sample_id == batch[0].sample_id and first.strategy == "disagreement"
    assert first.score == pytest.approx(0.5)
    carol.label(first.sample_id, ORACLE[first.sample_id])
    assert alice.labels()[first.sample_id] == ORACLE[first.sample_id]  # 2 votes to 1
    assert len(alice.annotations()) == 11
    for s in (alice, bob, carol):
        s.close()
    with open_session(path, aggregate="dawid_skene") as session:
        assert set(session.labels()) == {q.sample_id for q in batch}


# ---------------------------------------------------------------------- consistent reads
class _CommitBefore:
    """A connection that lets ``commit()`` run once, just before the first statement holding
    ``marker``: it simulates another process committing between two reads of one method."""

    def __init__(self, conn, marker, commit):
        self._conn, self._marker, self._commit = conn, marker, commit

    def execute(self, sql, *args):
        if self._commit is not None and self._marker in sql:
            commit, self._commit = self._commit, None
            commit()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_rounds_are_read_from_one_snapshot(tmp_path):
    path = tmp_path / "j.sqlite"
    with Journal(path) as reader, Journal(path) as writer:
        writer.add_round("a", "random", 0, 0, ["x", "y"], [None, None])
        reader._conn = _CommitBefore(
            reader.connection, "FROM queries",
            lambda: writer.add_round("b", "random", 0, 0, ["z"], [None]),
        )
        # The writer commits between the SELECT of the rounds and that of their queries.
        rounds = reader.rounds()
        assert [r["sample_ids"] for r in rounds] == [["x", "y"]]
        assert [r["sample_ids"] for r in reader.rounds()] == [["x", "y"], ["z"]]


_ROUND_WRITER = textwrap.dedent(
    """
    from skal.labeling import Journal
    with Journal({path!r}) as journal:
        for i in range(200):
            journal.add_round("w", "random", 0, 0, [f"s{{i}}-{{k}}" for k in range(3)],
                              [None] * 3)
    """
)


@pytest.mark.slow  # two labelling processes on one journal, end to end
def test_rounds_stay_whole_while_another_process_adds_rounds(tmp_path):
    path = str(tmp_path / "j.sqlite")
    Journal(path).close()
    writer = subprocess.Popen([sys.executable, "-c", _ROUND_WRITER.format(path=path)],
                              stderr=subprocess.PIPE, text=True)
    n_reads = 0
    with Journal(path) as reader:
        while writer.poll() is None or n_reads == 0:
            rounds = reader.rounds()  # raised KeyError when a round landed between the reads
            assert [r["round"] for r in rounds] == list(range(len(rounds)))
            assert all(len(r["sample_ids"]) == 3 for r in rounds)
            n_reads += 1
    assert writer.wait() == 0, writer.stderr.read()
    assert n_reads > 1


def test_a_round_is_computed_and_stamped_from_one_snapshot(tmp_path):
    """A round never holds a sample answered before the round's ``issued_after``."""
    path = tmp_path / "j.sqlite"
    small = dict(classes=CLASSES, sample_ids=IDS[:6], batch_size=6, random_state=0)
    with LabelingSession(None, X[:6], path, annotator="a", **small) as a, \
            LabelingSession(None, X[:6], path, annotator="b", **small) as b:
        b.label(IDS[0], ORACLE[IDS[0]])  # a must reload on its next call
        a.journal._conn = _CommitBefore(
            a.journal.connection, "FROM rounds", lambda: b.label(IDS[1], ORACLE[IDS[1]])
        )
        a.next_batch()
        answered_at = {r["sample_id"]: r["id"] for r in b.annotations()}
        (round_,) = a.history_
        stale = [s for s in round_["sample_ids"]
                 if answered_at.get(s, np.inf) <= round_["issued_after"]]
        assert stale == []


# ---------------------------------------------------------------------- damaged journals
def _labelled_journal(path, n_rounds=6):
    with open_session(path) as session:
        label_rounds(session, n_rounds)
    return path


def test_a_corrupted_journal_is_one_clear_error(tmp_path):
    path = _labelled_journal(tmp_path / "j.sqlite")
    size = os.path.getsize(path)
    assert size > 4 * 4096 and not os.path.exists(f"{path}-wal")  # all in the main file
    with open(path, "r+b") as handle:  # random bytes over the middle pages
        handle.seek(size // 2 - 2048)
        handle.write(np.random.RandomState(0).bytes(4096))
    for open_it in (open_session, lambda p: Journal(p).answers()):
        with pytest.raises(JournalError) as info:
            open_it(path)
        message = str(info.value)
        assert str(path) in message and "corrupt" in message and "backup" in message


def _edit(path, *statements):
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "stored, message",
    [("'{cat'", "not JSON"), ("'7'", "not one of the classes")],
    ids=["not-json", "not-a-class"],
)
def test_a_bad_label_in_the_journal_is_one_clear_error(tmp_path, stored, message):
    path = _labelled_journal(tmp_path / "j.sqlite", n_rounds=1)
    _edit(path, f"UPDATE answers SET label = {stored} WHERE id = 2")
    with pytest.raises(JournalError, match=message) as info:
        open_session(path)
    assert str(path) in str(info.value) and "answer 2" in str(info.value)


def test_a_bad_meta_value_in_the_journal_is_one_clear_error(tmp_path):
    path = _labelled_journal(tmp_path / "j.sqlite", n_rounds=1)
    _edit(path, "UPDATE meta SET value = 'seed?' WHERE key = 'seed'")
    with pytest.raises(JournalError, match="not JSON") as info:
        open_session(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TRIGGER zap AFTER INSERT ON answers BEGIN DELETE FROM answers; END",
        "CREATE TABLE notes (text TEXT)",
        "CREATE VIEW live AS SELECT * FROM answers WHERE undone = 0",
        "CREATE INDEX by_annotator ON answers (annotator)",
    ],
    ids=["trigger", "table", "view", "index"],
)
def test_a_journal_with_objects_skal_did_not_create_is_refused(tmp_path, statement):
    path = _labelled_journal(tmp_path / "j.sqlite", n_rounds=1)
    before = live_labels(path)
    _edit(path, statement)
    for open_it in (open_session, Journal):
        with pytest.raises(JournalError, match="did not create") as info:
            open_it(path)
        assert str(path) in str(info.value)
    _edit(path, f"DROP {statement.split()[1]} {statement.split()[2]}")
    with open_session(path) as session:  # without it the journal opens again
        session.label(IDS[-1], ORACLE[IDS[-1]])
    assert len(live_labels(path)) == len(before) + 1


def test_a_journal_with_a_changed_table_is_refused(tmp_path):
    path = _labelled_journal(tmp_path / "j.sqlite", n_rounds=1)
    _edit(path, "ALTER TABLE answers ADD COLUMN note TEXT")
    with pytest.raises(JournalError, match="did not create"):
        open_session(path)


# ---------------------------------------------------------------------- parameters
@pytest.mark.parametrize(
    "params, error, message",
    [
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"batch_size": -2}, ValueError, "batch_size must be a positive integer, got -2"),
        ({"batch_size": 2.7}, TypeError, "batch_size must be a positive integer, got 2.7"),
        ({"batch_size": True}, TypeError, "batch_size must be a positive integer"),
        ({"batch_size": "5"}, TypeError, "batch_size must be a positive integer"),
        ({"batch_size": None, "learner": ActiveLearner(batch_size=0)}, ValueError,
         "the learner's batch_size"),
        ({"labels_per_sample": 0}, ValueError, "labels_per_sample must be a positive integer"),
        ({"labels_per_sample": 1.5}, TypeError, "labels_per_sample must be a positive"),
        ({"classes": [None, 1]}, TypeError, "classes must hold str or int labels"),
        ({"classes": [0.0, 1.0]}, TypeError, "classes must hold str or int labels"),
        ({"classes": [float("nan"), 1]}, TypeError, "classes must hold str or int labels"),
        ({"classes": [True, False]}, TypeError, "classes must hold str or int labels"),
        ({"classes": [[0], [1]]}, TypeError, "classes must hold str or int labels"),
        ({"classes": []}, ValueError, "classes must hold at least two labels"),
        ({"classes": [1]}, ValueError, "classes must hold at least two labels"),
        ({"classes": [0, 1, 1]}, ValueError, r"classes must be unique; 1 is repeated"),
        ({"classes": ["0", 1]}, TypeError, "classes mixes str and int"),
        ({"classes": "ab"}, TypeError, "classes must be a sequence of labels"),
        ({"classes": 3}, TypeError, "classes must be a sequence of labels"),
        ({"sample_ids": IDS[:-1] + [None]}, TypeError, "sample_ids must hold str or int"),
        ({"sample_ids": IDS[:-1] + [1.5]}, TypeError, "sample_ids must hold str or int"),
        ({"sample_ids": "abc"}, TypeError, "sample_ids must be a sequence"),
        ({"annotator": ""}, ValueError, "annotator must be a non-empty string"),
        ({"annotator": None}, TypeError, "annotator must be a non-empty string"),
        ({"query_ahead": "no"}, TypeError, "query_ahead must be True or False"),
        ({"requery_disagreements": 1}, TypeError, "requery_disagreements must be True or"),
        ({"aggregate": "mean"}, ValueError, "aggregate must be one of"),
        ({"random_state": -1}, ValueError, "random_state must be None or a non-negative"),
        ({"random_state": np.random.RandomState(0)}, TypeError, "random_state must be None"),
        ({"random_state": 1.5}, TypeError, "random_state must be None"),
        ({"timeout": -1}, ValueError, "timeout must be a non-negative number"),
        ({"timeout": "5"}, TypeError, "timeout must be a non-negative number"),
        ({"learner": "logreg"}, TypeError, "learner must be None, a scikit-learn classifier"),
        ({"journal": 5}, TypeError, "journal must be a file path"),
    ],
)
def test_bad_parameters_are_refused_before_the_journal_is_touched(tmp_path, params, error,
                                                                  message):
    path = tmp_path / "j.sqlite"
    params = dict(params)
    journal = params.pop("journal", path)
    with pytest.raises(error, match=message):
        open_session(journal, **params)
    assert not os.path.exists(path)


def test_good_parameters_of_numpy_types_are_accepted(tmp_path):
    with open_session(tmp_path / "a.sqlite", batch_size=np.int64(3),
                      labels_per_sample=np.int32(1), classes=list(np.array(CLASSES)),
                      query_ahead=np.bool_(False), random_state=np.int64(4)) as session:
        assert len(session.next_batch()) == 3
        assert session.batch_size == 3 and type(session.batch_size) is int
    learner = ActiveLearner(LogisticRegression(), batch_size=4)
    with open_session(tmp_path / "b.sqlite", batch_size=None, learner=learner) as session:
        assert len(session.next_batch()) == 4  # None: the learner's batch_size


def test_label_names_a_bad_annotator(tmp_path):
    with open_session(tmp_path / "j.sqlite") as session:
        with pytest.raises(ValueError, match="annotator must be a non-empty string"):
            session.label(IDS[0], 0, annotator="")
        with pytest.raises(TypeError, match="annotator must be a non-empty string"):
            session.skip(IDS[0], annotator=7)
        assert session.annotations() == []


# ---------------------------------------------------------------------- randomness per round
SORTED = np.argsort(Y, kind="stable")  # a class-sorted pool: neighbours share a class
X_SORTED, SORTED_IDS = X[SORTED], [IDS[i] for i in SORTED]


class RandomKeys(QueryStrategy):
    """Random sampling by uniform keys: the rows with the k smallest keys."""

    def _select(self, learner, X_pool, batch_size, random_state):
        return np.argsort(random_state.random(X_pool.shape[0]))[:batch_size], None


def sorted_pool_session(path, strategy, **kwargs):
    learner = ActiveLearner(LogisticRegression(max_iter=200), strategy)
    return LabelingSession(learner, X_SORTED, path, classes=CLASSES, sample_ids=SORTED_IDS,
                           batch_size=5, random_state=0, **kwargs)


def neighbour_rate(history, strategy):
    """The share of picks within 2 rows of a pick of the round before, and its expectation
    under independent uniform draws (the neighbourhood's share of the pool)."""
    row = {sid: i for i, sid in enumerate(SORTED_IDS)}
    rounds = [[row[s] for s in r["sample_ids"]] for r in history if r["strategy"] == strategy]
    assert len(rounds) >= 12
    near, expected = [], []
    for before, now in zip(rounds[:-1], rounds[1:], strict=True):
        neighbourhood = {r + d for r in before for d in range(-2, 3)} & set(range(len(Y)))
        near += [r in neighbourhood for r in now]
        expected.append(len(neighbourhood) / len(Y))
    return np.mean(near), np.mean(expected)


@pytest.mark.parametrize(
    "strategy", [RandomSampling(), RandomKeys(), RandomKeys(random_state=3)], ids=repr
)
def test_successive_rounds_draw_independently(tmp_path, strategy):
    with sorted_pool_session(tmp_path / "j.sqlite", strategy) as session:
        label_rounds(session, 16)
        rate, expected = neighbour_rate(session.history_, type(strategy).__name__)
    # Seeding every round's clone with the one session seed replayed the same stream: the
    # keys of the remaining rows were those of the round before, shifted past the rows just
    # taken, so each round landed right next to the last (a rate near 1).
    assert rate < 3 * expected < 0.3


@pytest.mark.parametrize("query_ahead", [False, True])
@pytest.mark.parametrize("strategy", [RandomSampling(), RandomKeys()], ids=type)
def test_random_strategies_resume_as_if_uninterrupted(tmp_path, strategy, query_ahead):
    with sorted_pool_session(tmp_path / "a.sqlite", strategy,
                             query_ahead=query_ahead) as session:
        straight = label_rounds(session, 8)
    path = tmp_path / "b.sqlite"
    for n_rounds in (3, 2, 3):
        with sorted_pool_session(path, strategy, query_ahead=query_ahead) as session:
            label_rounds(session, n_rounds)
    with sorted_pool_session(path, strategy, query_ahead=query_ahead) as session:
        assert [r["sample_ids"] for r in session.history_] == straight


# ---------------------------------------------------------------------- export
def test_export_writes_what_the_session_trains_on(tmp_path):
    path = tmp_path / "j.sqlite"
    with open_session(path, annotator="alice", labels_per_sample=3) as alice, \
            open_session(path, annotator="bob", labels_per_sample=3) as bob, \
            open_session(path, annotator="carol", labels_per_sample=3) as carol:
        first, second, third, fourth, *_ = [q.sample_id for q in alice.next_batch()]
        alice.label(first, 0)
        alice.label(second, 0)
        assert alice.undo() == second
        alice.label(second, 1)  # the undone 0 is not counted
        alice.label(third, 2)
        alice.skip(fourth)  # a skip is no label
        bob.label(first, 1)  # first: alice 0, bob 1, carol 1 -> 1
        bob.label(second, 1)
        carol.label(first, 1)
        alice.export(tmp_path / "labels.csv")
        alice.export(tmp_path / "labels.json")
        model = alice.learner_  # what the session trains on
        with pytest.raises(ValueError, match=r"\*\.csv or \*\.json"):
            alice.export(tmp_path / "labels.xlsx")
    expected = [(first, 1, 3), (second, 1, 2), (third, 2, 1)]
    rows = [IDS.index(s) for s, _, _ in expected]
    np.testing.assert_array_equal(model.X_labeled_, X[rows])
    assert model.y_labeled_.tolist() == [label for _, label, _ in expected]
    with open(tmp_path / "labels.json") as handle:
        assert json.load(handle) == [
            {"sample_id": s, "label": label, "n_annotators": n} for s, label, n in expected]
    with open(tmp_path / "labels.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [["sample_id", "label", "n_annotators"]] + [
            [s, str(label), str(n)] for s, label, n in expected]
    # skal label --export reads the journal alone (no pool) and writes the same file.
    assert main(["label", "--journal", str(path), "--export",
                 str(tmp_path / "cli.json")]) == 0
    with open(tmp_path / "cli.json") as a, open(tmp_path / "labels.json") as b:
        assert a.read() == b.read()


def test_session_should_stop_follows_the_learners_criteria(tmp_path):
    from sklearn.datasets import load_digits

    from skal import ActiveLearner
    from skal.stopping import StabilizingPredictions, UncertaintyThreshold

    X, y = load_digits(return_X_y=True)
    X, y = X[:300], y[:300]
    plain = LabelingSession(None, X, tmp_path / "a.sqlite", classes=list(range(10)),
                            batch_size=5, random_state=0)
    learner = ActiveLearner(stopping=[StabilizingPredictions(window=1, threshold=0.5,
                                                             random_state=0),
                                      UncertaintyThreshold(threshold=-1.0)])
    with plain, LabelingSession(learner, X, tmp_path / "b.sqlite", classes=list(range(10)),
                                batch_size=5, random_state=0) as session:
        assert session.should_stop() is None  # no labels, no model yet
        reasons = []
        for _ in range(8):
            for query in session.next_batch():
                session.label(query.sample_id, int(y[int(query.sample_id)]))
            reasons.append(session.should_stop())
            assert session.should_stop() == reasons[-1]  # asked twice, one update
        for query in plain.next_batch():
            plain.label(query.sample_id, int(y[int(query.sample_id)]))
        assert plain.should_stop() is None
    assert reasons[0] is None  # the first model has nothing to agree with
    assert any(r is not None and r.startswith("StabilizingPredictions") for r in reasons)
