"""Person idle time per round, serial vs query-ahead labelling sessions.

A simulated person labels each sample after a fixed delay. Serial: after the last label of a
round the session refits and scores the pool while the person waits. Query-ahead: the next
round was computed in a background thread while the person labelled, so they wait only if
that computation outlasts their labelling. Idle time is measured as the seconds
``next_batch()`` blocks. Run: ``python benchmarks/bench_query_ahead.py``.
"""

import argparse
import os
import statistics
import tempfile
import time

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier

from skal import ActiveLearner
from skal.labeling import LabelingSession
from skal.strategies import EntropySampling


def run(query_ahead, X, y, n_rounds, batch_size, delay, directory):
    path = os.path.join(directory, f"ahead-{query_ahead}.sqlite")
    learner = ActiveLearner(
        RandomForestClassifier(n_estimators=100, n_jobs=1), EntropySampling(random_state=0)
    )
    idle = []
    with LabelingSession(learner, X, path, classes=[0, 1, 2], batch_size=batch_size,
                         query_ahead=query_ahead, random_state=0) as session:
        # Seed the labelled set so that every measured round uses the model.
        for i in range(30):
            session.label(i, int(y[i]))
        for _ in range(n_rounds):
            start = time.perf_counter()
            batch = session.next_batch()
            idle.append(time.perf_counter() - start)
            for query in batch:
                time.sleep(delay)  # the person reading and deciding
                session.label(query.sample_id, int(y[int(query.sample_id)]))
    return idle[1:]  # the first round has nothing to look ahead from


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-samples", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds per label")
    args = parser.parse_args()
    X, y = make_classification(args.n_samples, n_features=20, n_informative=8, n_classes=3,
                               random_state=0)
    with tempfile.TemporaryDirectory() as directory:
        results = {
            mode: run(mode == "query-ahead", X, y, args.rounds, args.batch_size, args.delay,
                      directory)
            for mode in ("serial", "query-ahead")
        }
    print(f"pool {args.n_samples} x 20, RandomForest(100) + EntropySampling, batch "
          f"{args.batch_size}, {args.delay:.2f} s per label, {args.rounds - 1} rounds")
    print(f"{'mode':<12} {'median idle s':>14} {'max idle s':>11} {'total idle s':>13}")
    for mode, idle in results.items():
        print(f"{mode:<12} {statistics.median(idle):>14.3f} {max(idle):>11.3f} "
              f"{sum(idle):>13.2f}")
    ratio = statistics.median(results["serial"]) / max(statistics.median(results["query-ahead"]),
                                                        1e-6)
    print(f"median idle, serial / query-ahead: {ratio:.0f}x")


if __name__ == "__main__":
    main()
