"""Pool scoring: speed of a margin query against a hand-written loop, and peak memory.

Run with ``python benchmarks/bench_query.py`` (``--quick`` for a smaller pool). Prints medians
and ratios measured in this one process, on the same data for every implementation:

1. Margin query with LogisticRegression on a 200,000 x 64 pool, skal's ``learner.query``
   against ``predict_proba`` + ``sort`` + ``argpartition`` written by hand; modAL's and
   scikit-activeml's margin queries when they are importable (install them in a separate
   environment: they pin their own dependencies).
2. Peak memory of scoring a 1,000,000 x 64 float32 pool, beyond the pool itself (tracemalloc
   sees every numpy allocation).
"""

import argparse
import gc
import os
import statistics
import time
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numpy as np  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from skal import ActiveLearner, MarginSampling  # noqa: E402


def hand_written_margin(model, X_pool, batch_size):
    proba = model.predict_proba(X_pool)
    proba.sort(axis=1)
    margin = proba[:, -1] - proba[:, -2]
    top = np.argpartition(margin, batch_size)[:batch_size]
    return top[np.argsort(margin[top])]


def median_seconds(func, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def anchors(model, X_train, y_train, X_pool, batch_size):
    """Callables for the other libraries that are importable here, each on the same data."""
    found = {}
    try:
        from modAL.models import ActiveLearner as ModalLearner
        from modAL.uncertainty import margin_sampling

        modal = ModalLearner(estimator=model, query_strategy=margin_sampling,
                             X_training=X_train, y_training=y_train)
        found["modAL margin_sampling"] = lambda: modal.query(X_pool, n_instances=batch_size)
    except ImportError:
        pass
    try:
        from skactiveml.pool import UncertaintySampling

        sampler = UncertaintySampling(method="margin_sampling", random_state=0)
        X_all = np.vstack([X_train, X_pool])
        y_all = np.concatenate([y_train, np.full(len(X_pool), np.nan)])

        def skactiveml_query():
            return sampler.query(X_all, y_all, clf=_skactiveml_clf(model, X_all, y_all),
                                 fit_clf=False, batch_size=batch_size)

        found["scikit-activeml UncertaintySampling(margin)"] = skactiveml_query
    except ImportError:
        pass
    return found


_SKACTIVEML_CLF = {}


def _skactiveml_clf(model, X, y):
    # Fitted once: only the query is timed, as for the other contenders.
    if "clf" not in _SKACTIVEML_CLF:
        from skactiveml.classifier import SklearnClassifier

        classes = np.unique(y[~np.isnan(y)])
        _SKACTIVEML_CLF["clf"] = SklearnClassifier(model, classes=classes).fit(X, y)
    return _SKACTIVEML_CLF["clf"]


def speed(n_pool, repeats):
    X, y = make_classification(n_samples=n_pool + 1000, n_features=64, n_informative=20,
                               n_classes=10, random_state=0)
    X = X.astype(np.float32)
    X_train, y_train, X_pool = X[:1000], y[:1000], X[1000:]
    model = LogisticRegression(max_iter=300).fit(X_train, y_train)
    learner = ActiveLearner(LogisticRegression(max_iter=300), MarginSampling(random_state=0))
    learner.fit(X_train, y_train)
    batch_size = 100

    same = set(learner.query(X_pool, batch_size)) == set(
        hand_written_margin(learner.estimator_, X_pool, batch_size)
    )
    print(f"\n1. margin query, LogisticRegression, pool {n_pool:,} x 64 float32, "
          f"batch {batch_size}")
    print(f"   skal and hand-written select the same rows: {same}")
    contenders = {
        "hand-written predict_proba + sort + argpartition": lambda: hand_written_margin(
            learner.estimator_, X_pool, batch_size),
        "skal ActiveLearner.query": lambda: learner.query(X_pool, batch_size),
    }
    contenders.update(anchors(model, X_train, y_train, X_pool, batch_size))
    # Interleave rounds so that load from other processes hits every contender alike.
    rounds = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, func in contenders.items():
            rounds[name].append(median_seconds(func, 1))
    reference = statistics.median(rounds["hand-written predict_proba + sort + argpartition"])
    for name, times in rounds.items():
        median = statistics.median(times)
        print(f"   {name:55s} median {median * 1000:8.1f} ms   ratio {median / reference:5.2f}")


def memory(n_pool):
    rng = np.random.RandomState(0)
    X_pool = rng.standard_normal((n_pool, 64)).astype(np.float32)
    y_train = np.arange(1000) % 10
    learner = ActiveLearner(LogisticRegression(max_iter=100), MarginSampling(random_state=0))
    learner.fit(X_pool[:1000], y_train)
    learner.query(X_pool[:1000], 10)  # warm up imports and caches
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    learner.query(X_pool, 100)
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    pool_bytes = X_pool.nbytes
    print(f"\n2. peak memory of a margin query over a {n_pool:,} x 64 float32 pool "
          f"({pool_bytes / 2**20:.0f} MiB)")
    print(f"   extra peak {peak / 2**20:.1f} MiB = {100 * peak / pool_bytes:.1f} % of the pool")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a 10x smaller pool, 3 rounds")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    print(f"numpy {np.__version__}, threads: OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}")
    speed(200_000 // scale, 3 if args.quick else 11)
    memory(1_000_000 // scale)


if __name__ == "__main__":
    main()
