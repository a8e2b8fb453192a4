"""Synthesised samples in a labelling session: rows made by a synthesizer (e.g. GAAL) that are
in no pool, journalled with their features so a resumed session can show them and train on
them."""

import copy
import threading

import numpy as np
from sklearn.base import clone

from skal.labeling._journal import decode_features, encode_features, synthetic_id
from skal.strategies._base import gather_rows


def check_synthesizer(synthesizer, X_pool):
    """``None``, or a clone of ``synthesizer`` after checking it and the pool can work."""
    if synthesizer is None:
        return None
    if not callable(getattr(synthesizer, "synthesize", None)):
        raise TypeError(
            "synthesizer must be None or an object with synthesize(learner, X_pool, "
            f"batch_size) such as skal.strategies.GAAL, got {type(synthesizer).__name__}."
        )
    kind = getattr(np.asarray(X_pool) if _is_plain_array(X_pool) else None, "dtype", None)
    if kind is None or kind.kind not in "biuf":
        raise TypeError(
            "A synthesizer makes rows of numbers, so the pool must be a numeric numpy array; "
            f"got {type(X_pool).__name__}. Convert it (e.g. X_pool.to_numpy()) or label "
            "without a synthesizer."
        )
    return clone(synthesizer, safe=False)  # a plain object is deep-copied


def _is_plain_array(X):
    return isinstance(X, np.ndarray | list | tuple)


class SyntheticSamples:
    """The journal's synthesised samples: ids, features and positions after the pool's.

    A synthesised sample's position is ``n_pool + j`` for the ``j``-th one recorded, so the
    labelled set stays a list of positions whatever its rows are.
    """

    def __init__(self, records, n_pool):
        self.n_pool = n_pool
        self.ids = [sid for sid, _ in records]
        self.features = [decode_features(text) for _, text in records]
        self.position = {sid: n_pool + j for j, sid in enumerate(self.ids)}

    def rows(self, X_pool, positions):
        """The rows at ``positions``: pool rows and synthesised ones, in that order."""
        positions = np.asarray(positions, dtype=np.intp)
        made = positions >= self.n_pool
        if not made.any():
            return gather_rows(X_pool, positions)
        pool_rows = np.asarray(gather_rows(X_pool, positions[~made]))
        synthetic = np.stack([self.features[p - self.n_pool] for p in positions[made]])
        out = np.empty((positions.size, *pool_rows.shape[1:]),
                       dtype=np.result_type(pool_rows.dtype, synthetic.dtype))
        out[~made] = pool_rows
        out[made] = synthetic.reshape(-1, *pool_rows.shape[1:])
        return out


class RoundSynthesizer:
    """The session's synthesizer, its generator fitted once on the whole pool and reused.

    Fitting waits for nothing but the first synthesis round, and a lock keeps the
    query-ahead thread and the session from fitting it twice.
    """

    def __init__(self, synthesizer, X_pool, seed):
        self._synthesizer = synthesizer
        self._X_pool = X_pool
        self._seed = seed
        self._fitted = None
        self._lock = threading.Lock()

    @property
    def name(self):
        return type(self._synthesizer).__name__

    def _fit(self):
        with self._lock:
            if self._fitted is None:
                synthesizer = self._synthesizer
                if getattr(synthesizer, "random_state", 0) is None:
                    synthesizer.random_state = self._seed
                if callable(getattr(synthesizer, "fit", None)):
                    synthesizer.fit(self._X_pool)
                self._fitted = synthesizer
        return self._fitted

    def propose(self, model, k, round_seed):
        """``k`` new rows near the model's boundary: ``(ids, scores, {id: features text})``.

        The round's own seed drives the search (mixed with an int ``random_state`` the user
        chose), so a resumed session synthesises what an uninterrupted one would.
        """
        synthesizer = copy.copy(self._fit())  # shares the fitted generator
        chosen = getattr(synthesizer, "random_state", None)
        if hasattr(synthesizer, "random_state"):
            mixed = [int(chosen), round_seed] if isinstance(chosen, int) else [round_seed]
            synthesizer.random_state = int(np.random.SeedSequence(mixed).generate_state(1)[0])
        X_new, scores = synthesizer.synthesize(model, self._X_pool, k, return_scores=True)
        made, kept = {}, []
        for row, score in zip(np.asarray(X_new), scores, strict=True):
            text = encode_features(row)
            sid = synthetic_id(text)
            if sid not in made:  # the same row twice is one sample
                made[sid] = text
                kept.append(float(score))
        return list(made), kept, made
