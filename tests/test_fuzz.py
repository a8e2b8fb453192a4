"""Random bad input for the learners and every strategy: a clear ValueError/TypeError or a
correct answer, never another exception, a hang or a wrong count of indices."""

import signal
import warnings

import numpy as np
import pytest
from _registry import (
    STRATEGY_NAMES,
    learner_for,
    slow_if_training,
    strategy_for,
    targets_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import skal.strategies as strategies

SPECIAL_VALUES = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, 0.0]


@st.composite
def arrays(draw, n_rows, n_features, allow_special=True):
    """Rows of features, sometimes of another dtype, shape, or with NaN/inf/huge values."""
    layout = draw(st.sampled_from(["2d"] * 6 + ["1d", "3d"]))
    values = np.random.RandomState(draw(st.integers(0, 2**16))).normal(
        size=(n_rows, n_features)
    )
    if allow_special and values.size and draw(st.booleans()):
        special = draw(st.sampled_from(SPECIAL_VALUES))
        values.flat[draw(st.integers(0, values.size - 1))] = special
    dtype = draw(st.sampled_from([np.float64, np.float64, np.float32, np.int64, object]))
    with np.errstate(over="ignore", invalid="ignore"):
        if dtype is np.int64:
            values = np.nan_to_num(values, posinf=0, neginf=0)
        values = values.astype(dtype)
    if layout == "1d":
        return values.ravel()
    if layout == "3d":
        return values.reshape(n_rows, n_features, 1)
    return values


def _learner(name, batch_size, budget):
    strategy = strategy_for(name, random_state=0)
    return learner_for(name, query_strategy=strategy, batch_size=batch_size, budget=budget,
                       n_initial=4, n_estimators=2)


def _alarm(*_):
    raise AssertionError("still running after 20 s: a hang")


def _check_answer(indices, n_pool, batch_size):
    assert indices.ndim == 1 and indices.dtype.kind == "i"
    assert indices.size == min(batch_size, n_pool)
    assert np.unique(indices).size == indices.size
    assert indices.size == 0 or (indices.min() >= 0 and indices.max() < n_pool)


BATCH_SIZES = st.one_of(st.integers(-2, 40), st.sampled_from([1.5, "3", None, True]))


@pytest.mark.parametrize("name", slow_if_training(STRATEGY_NAMES))
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_learner_and_strategy_on_random_input(name, data):
    n_features = data.draw(st.integers(1, 4), "n_features")
    n_rows = data.draw(st.integers(0, 40), "n_rows")
    X = data.draw(arrays(n_rows, n_features), "X")
    n_classes = data.draw(st.integers(1, 3), "n_classes")
    y = np.arange(n_rows) % n_classes
    if data.draw(st.booleans(), "unlabel"):
        y = np.where(np.arange(n_rows) % 3 == 0, y, -1)
    y = targets_for(name, y)
    simulate = data.draw(st.booleans(), "simulate")
    budget = data.draw(st.integers(1, 30), "budget") if simulate else None
    batch_size = data.draw(BATCH_SIZES, "batch_size")
    learner = _learner(name, batch_size, budget)

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(20)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                learner.fit(X, y)
            except (ValueError, TypeError) as error:
                assert str(error)
                return
            if simulate:
                assert learner.n_labels_ <= budget
                return
            n_pool = data.draw(st.integers(0, 30), "n_pool")
            X_pool = data.draw(arrays(n_pool, n_features), "X_pool")
            query_batch = data.draw(BATCH_SIZES, "query_batch")
            try:
                indices = learner.query(X_pool, query_batch)
            except (ValueError, TypeError) as error:
                assert str(error)
                return
            size = learner.batch_size if query_batch is None else query_batch
            _check_answer(indices, len(X_pool), size)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("name", STRATEGY_NAMES)
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_strategy_called_directly_on_random_pools(name, data):
    # Strategies are callables on their own: an unfitted learner (None) or a fitted one.
    n_features = data.draw(st.integers(1, 3), "n_features")
    n_pool = data.draw(st.integers(0, 25), "n_pool")
    X_pool = data.draw(arrays(n_pool, n_features), "X_pool")
    batch_size = data.draw(BATCH_SIZES, "batch_size")
    strategy = getattr(strategies, name)(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            indices = strategy(None, X_pool, batch_size)
        except (ValueError, TypeError) as error:
            assert str(error)
            return
    # A 1-d pool is a pool of len(X_pool) rows to a strategy that needs no model.
    _check_answer(indices, len(X_pool), batch_size)
