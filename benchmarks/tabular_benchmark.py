"""Run (or resume) Lu, Li & Lin's tabular active-learning benchmark with skal's learner.

One JSON file per data set, strategy, batch size and seed under OUT/runs/; files already there
are skipped, so rerunning the same command resumes. Then OUT/summary.csv, OUT/repetitions.csv
and OUT/strategies.csv are rewritten from every file present. Run it niced, one at a time:

    nice -n 10 python benchmarks/tabular_benchmark.py ../shared/data/al-benchmark \
        --strategies random decision_margin --batch-sizes 1 --repetitions 30 \
        --datasets sonar parkinsons ex8b heart ionosphere wdbc australian german splice \
        gcloudub checkerboard

``--summary-only`` rewrites the tables (and the plot, with ``--plot``) without running.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "results" / "tabular_benchmark"


def main(argv=None):
    from skal.experiments._tabular_benchmark import (
        DATASETS,
        plot_tabular_benchmark,
        run_tabular_benchmark,
        write_tables,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="the folder of the benchmark CSVs (al-benchmark)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--datasets", nargs="+", default=None, choices=DATASETS)
    parser.add_argument("--strategies", nargs="+", default=["random", "decision_margin"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1])
    parser.add_argument("--repetitions", type=int, default=30)
    parser.add_argument("--large-repetitions", type=int, default=5)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--plot", action="store_true", help="also draw OUT/aubc.png")
    args = parser.parse_args(argv)
    out = Path(args.out)
    # One BLAS thread: the query models' tiny lbfgs fits ran 8x slower with two threads
    # contending on a busy two-core machine.
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    if not args.summary_only:
        run_tabular_benchmark(args.data_dir, out, datasets=args.datasets,
                              strategies=args.strategies, batch_sizes=args.batch_sizes,
                              n_repetitions=args.repetitions,
                              large_repetitions=args.large_repetitions)
    summary = write_tables(out)
    if summary.empty:
        print("no finished repetitions yet")
        return 0
    if args.plot:
        plot_tabular_benchmark(summary, out / "aubc.png")
    print(summary.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
