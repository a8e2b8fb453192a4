"""Synthesised samples in labelling sessions (GAAL): journalled with their features, learned
from, kept across a SIGKILL and a resume; journals without them stay version 1."""

import json
import os
import signal
import sqlite3
import time

import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.datasets import make_classification
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.utils import check_random_state

from skal import ActiveLearner
from skal.labeling import Journal, LabelingSession
from skal.labeling._journal import _STATEMENTS
from skal.strategies import GAAL

X, Y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3,
                           random_state=0)
IDS = [f"row-{i:04d}" for i in range(len(Y))]
ORACLE = dict(zip(IDS, Y.tolist(), strict=True))
# A person labelling a synthesised row, simulated: the label of the nearest pool row.
NEAREST = KNeighborsClassifier(n_neighbors=1).fit(X, Y)


class LinearGaussianGenerator(BaseEstimator):
    """A linear-Gaussian generator (probabilistic PCA's mean): x = mean + z * sd @ components.

    A real generator without torch, so that labellers can be forked safely and fast.
    """

    def __init__(self, n_components=3):
        self.n_components = n_components

    def fit(self, X, y=None):
        pca = PCA(self.n_components).fit(X)
        self.mean_ = pca.mean_
        self.loadings_ = np.sqrt(pca.explained_variance_)[:, None] * pca.components_
        return self

    def sample_latent(self, n_samples, random_state=None):
        return check_random_state(random_state).standard_normal((n_samples, self.n_components))

    def generate(self, Z):
        return self.mean_ + np.asarray(Z) @ self.loadings_


def open_session(path, synthesize=True, **kwargs):
    params = dict(classes=[0, 1, 2], sample_ids=IDS, batch_size=4, random_state=0)
    params.update(kwargs)
    synthesizer = GAAL(LinearGaussianGenerator(), n_candidates=40, n_steps=4, n_proposals=4)
    return LabelingSession(ActiveLearner(LogisticRegression(max_iter=300)), X, path,
                           synthesizer=synthesizer if synthesize else None, **params)


def answer(session, sample_id):
    """The simulated person's label: the oracle for pool rows, the nearest row's otherwise."""
    if sample_id in ORACLE:
        return ORACLE[sample_id]
    return int(NEAREST.predict(session.features(sample_id)[None, :])[0])


def label_rounds(session, n_rounds):
    batches = []
    for _ in range(n_rounds):
        batch = session.next_batch()
        batches.append([q.sample_id for q in batch])
        for query in batch:
            session.label(query.sample_id, answer(session, query.sample_id))
    return batches


def test_synthesised_samples_are_journalled_with_features_and_learned_from(tmp_path):
    path = tmp_path / "j.sqlite"
    pool_before = X.copy()
    with open_session(path) as session:
        batches = label_rounds(session, 5)
        made = [sid for batch in batches for sid in batch if sid.startswith("synth-")]
        assert made and all(r["strategy"] == "GAAL" for r in session.history_[-2:])
        rows = {sid: session.features(sid) for sid in made}
        assert all(row.shape == (6,) for row in rows.values())
        model = session.learner_
        assert model.n_labels_ == session.n_labels_ == 20
        assert sum(np.any(np.all(model.X_labeled_ == row, axis=1)) for row in rows.values()) \
            == len(made)
        proba = model.predict_proba(X[:5])
        labels = session.labels()
    np.testing.assert_array_equal(X, pool_before)  # the pool is not changed
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == \
        ("2",)
    assert {k for (k,) in conn.execute("SELECT DISTINCT typeof(features) FROM synthetic")} == \
        {"text"}
    conn.close()
    # Resumed, with or without the synthesizer: the same rows, labels and model.
    for synthesize in (True, False):
        with open_session(path, synthesize=synthesize) as session:
            assert session.labels() == labels
            for sid, row in rows.items():
                np.testing.assert_array_equal(session.features(sid), row)
            np.testing.assert_allclose(session.learner_.predict_proba(X[:5]), proba)


@pytest.mark.slow
def test_synthesised_rows_lie_nearer_the_boundary_than_the_pool(tmp_path):
    with open_session(tmp_path / "j.sqlite") as session:
        label_rounds(session, 3)
        model = session.learner_
        batch = session.next_batch()
        made = np.array([session.features(q.sample_id) for q in batch])

    def margin(rows):
        top = np.sort(model.predict_proba(rows), axis=1)
        return top[:, -1] - top[:, -2]
    assert np.median(margin(made)) < np.quantile(margin(X), 0.1)


def test_a_version_1_journal_opens_and_moves_to_version_2_with_the_first_synthesised_sample(
        tmp_path):
    path = tmp_path / "old.sqlite"
    # As an earlier skal wrote it: the version 1 tables and meta data, and two answers.
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for statement in _STATEMENTS:
        conn.execute(statement)
    with open_session(tmp_path / "scratch.sqlite", synthesize=False) as scratch:
        meta = scratch.journal.meta()
    assert meta["schema_version"] == 1
    for key, value in meta.items():
        conn.execute("INSERT INTO meta VALUES (?, ?)", (key, json.dumps(value)))
    for i, sid in enumerate(IDS[:2]):
        conn.execute("INSERT INTO answers (sample_id, label, annotator, time) VALUES "
                     "(?, ?, 'annotator', ?)", (sid, str(ORACLE[sid]), float(i)))
    conn.close()
    with open_session(path, synthesize=False) as session:  # opens as it is, unchanged
        assert session.labels() == {sid: ORACLE[sid] for sid in IDS[:2]}
        label_rounds(session, 2)
    with Journal(path) as journal:
        assert journal.meta()["schema_version"] == 1 and journal.synthetic() == []
    with open_session(path) as session:
        label_rounds(session, 2)
        assert any(sid.startswith("synth-") for sid in session.labels())
    with Journal(path) as journal:
        assert journal.meta()["schema_version"] == 2 and journal.synthetic()
        assert journal.integrity_check() == "ok"


def _fork_labeller(path, wfd, query_ahead):
    try:
        with open_session(path, query_ahead=query_ahead) as session:
            while True:
                batch = session.next_batch()
                if not batch:
                    break
                for query in batch:
                    label = answer(session, query.sample_id)
                    session.label(query.sample_id, label)
                    digest = np.asarray(session.features(query.sample_id)).tobytes().hex()
                    os.write(wfd, f"{query.sample_id} {label} {digest}\n".encode())
    finally:
        os._exit(0)


def _kill_child_after(path, delay, query_ahead=False):
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
    return [line.split() for line in b"".join(chunks).decode().splitlines()]


def _check_acknowledged(path, acked):
    with open_session(path) as session:
        labels = session.labels()
        for sid, label, digest in acked:
            assert labels[sid] == int(label), f"acknowledged label of {sid} lost"
            assert np.asarray(session.features(sid)).tobytes().hex() == digest
        assert session.learner_.n_labels_ == len(labels)
    with Journal(path) as journal:
        assert journal.integrity_check() == "ok"


def test_sigkill_after_labelling_synthesised_samples_then_resume(tmp_path):
    with open_session(tmp_path / "straight.sqlite") as session:
        straight = label_rounds(session, 6)
    path = tmp_path / "killed.sqlite"
    acked = _kill_child_after(path, 1.5)
    assert any(sid.startswith("synth-") for sid, _, _ in acked), "no synthesised sample yet"
    _check_acknowledged(path, acked)
    # Resumed, the session proposes what an uninterrupted one did, synthesised rows and all.
    with open_session(path) as session:
        while len(session.history_) < 6 or session.pending():
            for query in session.next_batch():
                session.label(query.sample_id, answer(session, query.sample_id))
        assert [r["sample_ids"] for r in session.history_][:6] == straight


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_synthesised_sample(tmp_path):
    path = tmp_path / "journal.sqlite"
    rng = np.random.RandomState(0)
    all_acked = []
    for i in range(12):
        all_acked += _kill_child_after(path, rng.uniform(0.05, 1.0), query_ahead=i % 2 == 1)
        _check_acknowledged(path, all_acked)
    assert sum(sid.startswith("synth-") for sid, _, _ in all_acked) > 10


def test_a_synthesizer_needs_a_numeric_array_pool(tmp_path):
    import pandas as pd

    with pytest.raises(TypeError, match="synthesizer must be None or an object with"):
        LabelingSession(None, X, tmp_path / "a.sqlite", classes=[0, 1], synthesizer="gaal")
    with pytest.raises(TypeError, match="the pool must be a numeric numpy array"):
        LabelingSession(None, pd.DataFrame(X), tmp_path / "b.sqlite", classes=[0, 1],
                        synthesizer=GAAL())
    assert not os.listdir(tmp_path)
