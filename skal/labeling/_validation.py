"""Checks of :class:`~skal.labeling.LabelingSession`'s parameters, run before the journal is
touched; each error names the parameter and what to pass instead."""

import math
import numbers
import os

import numpy as np

from skal.learners import ActiveLearner


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_positive_int(value, name, way_out=""):
    """``value`` as an int >= 1, else a TypeError or ValueError naming ``name``."""
    if not _is_int(value):
        raise TypeError(f"{name} must be a positive integer, got {value!r}{way_out}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}{way_out}.")
    return int(value)


def check_batch_size(batch_size, learner):
    """The rows per round: ``batch_size``, or the learner's own when it is None."""
    if batch_size is None:
        own = getattr(learner, "batch_size", 10)
        return check_positive_int(
            own, f"the learner's batch_size (used because batch_size=None) of {learner!r}",
            "; set it on the learner or pass batch_size"
        )
    return check_positive_int(
        batch_size, "batch_size", ", or None for the learner's batch_size"
    )


def check_bool(value, name):
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


def check_classes(classes):
    """The class set as a list of unique str (or unique int) labels, at least two."""
    if isinstance(classes, str | bytes) or not hasattr(classes, "__iter__"):
        raise TypeError(
            f"classes must be a sequence of labels such as ['cat', 'dog'] or [0, 1], got "
            f"{classes!r}."
        )
    classes = [_scalar(c) for c in classes]
    for c in classes:
        # Floats (NaN among them) and bools compare equal to other labels (1.0 == 1 == True)
        # while the journal keeps them apart; None is how a skip is stored.
        if not (_is_int(c) or isinstance(c, str)):
            raise TypeError(
                f"classes must hold str or int labels (not None, NaN, floats or bools), got "
                f"{c!r} of type {type(c).__name__}; write such labels as strings, e.g. "
                f"{str(c)!r}."
            )
    if len(classes) < 2:
        raise ValueError(f"classes must hold at least two labels, got {classes}.")
    if len({type(c) is str for c in classes}) > 1:
        raise TypeError(
            f"classes mixes str and int labels ({classes}); numpy would turn them all into "
            "strings, so use one kind, e.g. all strings."
        )
    seen = set()
    for c in classes:
        if c in seen:
            raise ValueError(f"classes must be unique; {c!r} is repeated in {classes}.")
        seen.add(c)
    return classes


def check_sample_ids(sample_ids, n):
    """The pool's ids as unique strings, one per row; row numbers when None."""
    if sample_ids is None:
        return [str(i) for i in range(n)]
    if isinstance(sample_ids, str | bytes) or not hasattr(sample_ids, "__iter__"):
        raise TypeError(
            f"sample_ids must be a sequence of ids, one per row of the pool, or None for the "
            f"row numbers; got {sample_ids!r}."
        )
    ids = []
    for position, sid in enumerate(sample_ids):
        sid = _scalar(sid)
        if not (_is_int(sid) or isinstance(sid, str)):
            raise TypeError(
                f"sample_ids must hold str or int ids, got {sid!r} of type "
                f"{type(sid).__name__} at position {position}."
            )
        ids.append(str(sid))
    if len(ids) != n:
        raise ValueError(f"sample_ids has {len(ids)} ids for a pool of {n} rows.")
    if len(set(ids)) != n:
        raise ValueError("sample_ids must be unique; the pool has repeated ids.")
    return ids


def check_annotator(annotator, name="annotator"):
    if not isinstance(annotator, str):
        raise TypeError(f"{name} must be a non-empty string (a name), got {annotator!r}.")
    if not annotator:
        raise ValueError(f"{name} must be a non-empty string (a name), got ''.")
    return annotator


def check_seed(random_state):
    if random_state is None:
        return None
    if not _is_int(random_state):
        raise TypeError(
            f"random_state must be None or a non-negative int (the session's seed is stored "
            f"in the journal), got {random_state!r}."
        )
    if random_state < 0:
        raise ValueError(
            f"random_state must be None or a non-negative int, got {random_state}."
        )
    return int(random_state)


def check_timeout(timeout):
    if isinstance(timeout, bool | np.bool_) or not isinstance(timeout, numbers.Real):
        raise TypeError(f"timeout must be a non-negative number of seconds, got {timeout!r}.")
    if not (timeout >= 0 and math.isfinite(timeout)):
        raise ValueError(f"timeout must be a non-negative number of seconds, got {timeout}.")
    return float(timeout)


def check_journal_path(journal):
    if not isinstance(journal, str | os.PathLike):
        raise TypeError(
            f"journal must be a file path (str or path-like), got {journal!r}."
        )
    return journal


def check_learner(learner):
    """An active learner for ``learner``: None and plain classifiers are wrapped."""
    if learner is None:
        return ActiveLearner()
    if not (hasattr(learner, "fit") and hasattr(learner, "get_params")):
        raise TypeError(
            "learner must be None, a scikit-learn classifier or an ActiveLearner (unfitted; "
            f"it is cloned each round), got {learner!r}."
        )
    return learner if hasattr(learner, "query") else ActiveLearner(learner)
