"""The annotators of the web labelling page: one LabelingSession each on the shared journal,
the samples they hold, their keys, and a background refit for the model's guess and the
learning curve. Plain Python: the HTTP side is in ``_web.py``."""

import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import clone
from sklearn.utils.validation import _num_samples

from skal.labeling._journal import encode_label
from skal.labeling._session import LabelingSession
from skal.learners._base import seed_estimator
from skal.stopping._criteria import advice_on_unlabelled, fresh_criteria
from skal.strategies._base import take_rows

RESERVED_KEYS = ("s", "u", "?")
_DEFAULT_KEYS = "1234567890abcdefghijklmnoprtvwxyz"
# A sample shown to an annotator who then goes away is offered to others after this long.
HOLD_SECONDS = 600.0
READER = "skal-web"  # the session that only reads (progress, labels, the learning curve)


def default_keys(classes):
    """One key per class: the class itself when every class is one character (the digits
    0-9 of MNIST are typed as themselves), else 1, 2, ..., 9, 0, a, b, ..."""
    texts = [str(c) for c in classes]
    if all(len(t) == 1 for t in texts) and not set(texts) & set(RESERVED_KEYS):
        return texts
    if len(texts) > len(_DEFAULT_KEYS):
        raise ValueError(
            f"{len(texts)} classes need more than the {len(_DEFAULT_KEYS)} default keys; "
            "pass keys."
        )
    return list(_DEFAULT_KEYS[: len(texts)])


def check_keys(keys, classes):
    """The keys of the classes, one single character each, distinct, none reserved."""
    keys = default_keys(classes) if keys is None else list(keys)
    if len(keys) != len(classes) or not all(isinstance(k, str) and len(k) == 1 for k in keys):
        raise ValueError(
            f"keys must give one single-character key per class ({len(classes)} classes), "
            f"got {keys!r}."
        )
    if len(set(keys)) != len(keys) or set(keys) & set(RESERVED_KEYS):
        raise ValueError(
            f"keys must be distinct and avoid the reserved keys {list(RESERVED_KEYS)} (skip, "
            f"undo, help), got {keys!r}."
        )
    return keys


def check_held_out(held_out, pool, classes):
    if held_out is None:
        return None
    if not (isinstance(held_out, tuple | list) and len(held_out) == 2):
        raise TypeError("held_out must be None or a pair (X_test, y_test).")
    X_test, y_test = held_out
    y_test = np.asarray(y_test)
    if y_test.ndim != 1 or len(y_test) != len(X_test) or len(y_test) == 0:
        raise ValueError(
            f"held_out must be (X_test, y_test) with one label per row; got {len(X_test)} "
            f"rows and labels of shape {y_test.shape}."
        )
    n_features = np.shape(pool.X)[1]
    if np.shape(X_test)[1:] != np.shape(pool.X)[1:]:
        raise ValueError(
            f"held_out's X_test has rows of shape {np.shape(X_test)[1:]}, the pool's "
            f"{np.shape(pool.X)[1:]} ({n_features} features)."
        )
    if isinstance(classes[0], str):
        y_test = y_test.astype(str)
    known = {encode_label(c) for c in classes}
    unknown = sorted({str(v) for v in y_test.tolist() if encode_label(v) not in known})
    if unknown:
        raise ValueError(f"held_out's labels {unknown[:5]} are not among the classes {classes}.")
    return X_test, y_test


class ModelWatcher:
    """Refits the learner on the current labels in a background thread, for the model's
    guess on the sample shown and the learning curve on the held-out set; never in the way
    of an answer (the page shows the latest finished fit)."""

    def __init__(self, learner, seed, X, held_out):
        self.learner = learner
        self.seed = seed
        self.X = X
        self.held_out = held_out
        self.pool_ids = range(_num_samples(X))

    def start(self):
        self.model_ = None
        self.curve_ = []
        self.stop_reason_ = None
        self._criteria = fresh_criteria(getattr(self.learner, "stopping", None))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skal-web-model")
        self._running = False
        self._wanted = None
        self._done_key = None

    def refresh(self, positions, labels):
        """Ask for a fit on these labels (called from the session thread)."""
        key = (tuple(positions), tuple(encode_label(v) for v in labels))
        if key == self._done_key or len(set(key[1])) < 2:
            return
        self._wanted = (key, positions, labels)
        if not self._running:
            self._running = True
            self._executor.submit(self._work)

    def _work(self):
        try:
            while self._wanted is not None:
                (key, positions, labels), self._wanted = self._wanted, None
                model = seed_estimator(clone(self.learner), self.seed, overwrite=False)
                model.fit(take_rows(self.X, np.asarray(positions, dtype=np.intp)),
                          np.asarray(labels))
                if self.held_out is not None:
                    score = round(float(model.score(*self.held_out)), 4)
                    # One point per number of labels, the latest fit's (undo goes back).
                    points = dict(self.curve_)
                    points[len(positions)] = score
                    self.curve_ = sorted(points.items())
                self._check_stopping(model, positions)
                self.model_, self._done_key = model, key
        finally:
            self._running = False
            if self._wanted is not None:  # asked for during the last fit's final moments
                self._running = True
                self._executor.submit(self._work)

    def _check_stopping(self, model, positions):
        # once per label set, as LabelingSession.should_stop does: advice for the page
        self.stop_reason_ = advice_on_unlabelled(self._criteria, model, self.X, positions)

    def guess(self, index):
        model = self.model_
        if model is None or not hasattr(model, "predict_proba"):
            return None
        proba = model.predict_proba(take_rows(self.X, np.array([index])))[0]
        best = int(np.argmax(proba))
        label = model.classes_[best]
        return {"label": label.item() if isinstance(label, np.generic) else label,
                "uncertainty": round(1.0 - float(proba[best]), 4)}

    def close(self):
        self._executor.shutdown(wait=True, cancel_futures=True)


class Desk:
    """The annotators' sessions and the samples they hold. Every method runs in one thread
    (SQLite connections belong to the thread that opened them)."""

    def __init__(self, pool, journal, session_params, budget, show_guess, held_out, keys):
        self.pool = pool
        self.journal = journal
        self.session_params = session_params
        self.budget = budget
        self.show_guess = show_guess
        self.held_out = held_out
        self.keys = keys

    def open(self):
        self._sessions = {}
        self._holds = {}  # annotator -> (sample id, since)
        self._redo = {}  # annotator -> undone sample ids, latest last
        params = dict(self.session_params, query_ahead=False)
        self.reader_ = LabelingSession(self.session_params["learner"], self.pool.X,
                                       self.journal, annotator=READER,
                                       **{k: v for k, v in params.items() if k != "learner"})
        self._position = {sid: i for i, sid in enumerate(self.pool.sample_ids)}
        self.classes_ = self.reader_.classes_
        self.budget_ = len(self.pool) if self.budget is None else self.budget
        self.watcher_ = None
        stopping = getattr(self.reader_.learner, "stopping", None)
        if self.show_guess or self.held_out is not None or stopping:
            self.watcher_ = ModelWatcher(self.reader_.learner, self.reader_.seed_, self.pool.X,
                                          self.held_out)
            self.watcher_.start()
            self._refresh_model()
        return self

    def config(self):
        return {
            "classes": self.classes_,
            "keys": self.keys,
            "budget": self.budget_,
            "n_samples": len(self.pool),
            "show_guess": self.show_guess,
            "curve": self.held_out is not None,
            "picked_by": self.reader_.picked_by,
            "labels_per_sample": self.reader_.labels_per_sample,
        }

    def _session(self, name):
        session = self._sessions.get(name)
        if session is None:
            params = dict(self.session_params)
            learner = params.pop("learner")
            # The stored seed: an int given for a new journal is already in it.
            params["random_state"] = None
            session = LabelingSession(learner, self.pool.X, self.journal, annotator=name,
                                      **params)
            self._sessions[name] = session
        return session

    def _held_by_others(self, name):
        now = time.monotonic()
        return {sid for who, (sid, since) in self._holds.items()
                if who != name and now - since < HOLD_SECONDS}

    def _mine(self, name):
        return {a["sample_id"] for a in self._session(name).annotations()
                if a["annotator"] == name}

    def current(self, name):
        """The sample ``name`` holds (the same after a page reload), else the next one."""
        held = self._holds.get(name)
        if held is not None and held[0] not in self._mine(name):
            self._holds[name] = (held[0], time.monotonic())
            return self._state(name, held[0], "shown before")
        return self._advance(name)

    def _advance(self, name):
        session = self._session(name)
        self._holds.pop(name, None)
        if session.n_labels_ >= self.budget_:
            return self._state(name, None, done=True)
        mine = self._mine(name)
        redo = self._redo.setdefault(name, [])
        while redo and redo[-1] in mine:
            redo.pop()
        if redo:
            sample_id, why = redo[-1], "undone"
        else:
            others = self._held_by_others(name)
            batch = session.next_batch(exclude=others)
            if not batch:
                return self._state(name, None, done=not others)
            query = batch[0]
            sample_id = query.sample_id
            why = query.strategy if query.score is None else (
                f"{query.strategy}, score {query.score:.3g}")
        self._holds[name] = (sample_id, time.monotonic())
        return self._state(name, sample_id, why)

    def _state(self, name, sample_id, why=None, done=False):
        session = self._session(name)
        out = {
            "annotator": name,
            "progress": {"labelled": session.n_labels_, "budget": self.budget_},
            "done": done,
            "waiting": sample_id is None and not done,
            "sample": None,
        }
        if self.held_out is not None:
            out["curve"] = self.watcher_.curve_
        if self.watcher_ is not None and self.watcher_.stop_reason_ is not None:
            out["stop"] = self.watcher_.stop_reason_
        if sample_id is not None:
            index = self._position[sample_id]
            sample = {"id": sample_id, "why": why, **self.pool.payload(index)}
            if self.show_guess:
                sample["guess"] = self.watcher_.guess(index)
            out["sample"] = sample
        return out

    def answer(self, name, sample_id, label, skipped):
        session = self._session(name)
        if skipped:
            answer_id = session.skip(sample_id)
        else:
            answer_id = session.label(sample_id, label)
        # Committed: from here on the answer survives a crash.
        self._refresh_model()
        out = self._advance(name)
        out["saved"] = {"sample_id": sample_id, "label": None if skipped else label,
                        "skipped": skipped, "answer_id": answer_id}
        return out

    def undo(self, name):
        undone = self._session(name).undo()
        if undone is None:
            out = self.current(name)
        else:
            self._redo.setdefault(name, []).append(undone)
            self._refresh_model()
            out = self._advance(name)
        out["undone"] = undone
        return out

    def _refresh_model(self):
        if self.watcher_ is None:
            return
        labels = self.reader_.labels()
        self.watcher_.refresh([self._position[s] for s in labels], list(labels.values()))

    def close(self):
        if getattr(self, "watcher_", None) is not None:
            self.watcher_.close()
        for session in getattr(self, "_sessions", {}).values():
            session.close()
        if getattr(self, "reader_", None) is not None:
            self.reader_.close()


