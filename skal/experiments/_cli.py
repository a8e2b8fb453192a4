"""``skal run``: a simulated active-learning comparison from the command line.

Options come from three places, later ones winning: built-in defaults, a TOML file given with
``--config``, and the command line. The options used are written to ``config.toml`` in the
output folder, so ``skal run --config that/config.toml`` reruns the experiment exactly.
"""

import argparse
import ast
import datetime
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

BUNDLED_DATA = ("digits", "iris", "wine", "breast_cancer")
CLASSICAL_MODELS = (
    "logreg",
    "random_forest",
    "extra_trees",
    "knn",
    "naive_bayes",
    "linear_svm",
)
NET_MODELS = ("mlp", "cnn")

DEFAULTS = {
    "data": "digits",
    "label_column": "label",
    "test_size": 0.25,
    "pool_size": None,
    "model": "logreg",
    "strategies": ["random", "margin", "entropy", "vote_entropy"],
    "committee_size": 5,
    "budget": 300,
    "batch_size": 10,
    "initial_size": 20,
    "repeats": 5,
    "target": None,
    "n_jobs": -1,
    "device": "cpu",
    "seed": 0,
    "epochs": 10,
    # protocol details of published deep active-learning benchmarks (torch networks only)
    "initial_strategy": "random",
    "mc_samples": 20,
    "lr": None,
    "validation_size": 0,
    "patience": 3,
    "epoch_samples": None,
    # a published benchmark run as a whole: "tabular_benchmark" (Lu, Li & Lin; data is the
    # folder of its CSVs, datasets a list of their names or all of them)
    "recipe": None,
    "datasets": None,
}
RECIPES = ("tabular_benchmark",)
INITIAL_STRATEGIES = ("random", "balanced")

# Strategies that need posterior samples: query-by-committee ones get a CommitteeLearner;
# Bayesian ones (MC dropout) need a model that samples itself.
_COMMITTEE_STRATEGIES = {"VoteEntropy", "KLDivergence", "ConsensusEntropy"}
_BAYESIAN_STRATEGIES = {"BALD", "BatchBALD", "StochasticBALD"}


# ---------------------------------------------------------------------------- arguments
def add_arguments(parser):
    """Add the options of ``skal run`` to ``parser``."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (
        "Simulate active learning on a data set whose labels are known and compare query\n"
        "strategies. The data are split into a pool and a test set; every run starts from\n"
        "--initial-size random labelled pool rows (the same rows for every strategy in a\n"
        "repeat), asks a strategy for --batch-size rows per cycle, reveals their labels,\n"
        "refits the model and scores it on the test set, until --budget labels are used.\n"
        "Each strategy runs --repeats times with different seeds.\n\n"
        "Prints a results table and writes results.csv, summary.csv, results.json,\n"
        "config.toml and learning_curves.png to the output folder.\n\n"
        "examples:\n"
        "  skal run                                   # digits, 4 strategies, under a minute\n"
        "  skal run --strategies random margin --budget 100 --repeats 3\n"
        "  skal run --data my.csv --label-column species --model random_forest\n"
        "  skal run --strategies random 'vote_entropy:n_jobs=2' --committee-size 7\n"
        "  skal run --config skal-results/digits-20250101-120000/config.toml  # rerun"
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar="NAME_OR_PATH",
        help="a bundled scikit-learn data set (" + ", ".join(BUNDLED_DATA) + "), a CSV file "
        "with a label column, or a folder holding the MNIST idx files "
        "(train-*/t10k-*-idx?-ubyte[.gz]) (default: digits)",
    )
    data.add_argument(
        "--label-column", metavar="COLUMN", help="the label column of a CSV file (default: label)"
    )
    data.add_argument(
        "--test-size",
        type=float,
        metavar="FRACTION",
        help="fraction of the data held out as the test set, stratified (default: 0.25; "
        "MNIST uses its own test files)",
    )
    data.add_argument(
        "--pool-size",
        type=int,
        metavar="N",
        help="subsample the pool to N rows, for large data sets (default: the whole pool)",
    )
    model = parser.add_argument_group("model and strategies")
    model.add_argument(
        "--model",
        help="the classifier: " + ", ".join(CLASSICAL_MODELS) + ", or the torch networks "
        + ", ".join(NET_MODELS) + " (need skal[torch]) (default: logreg)",
    )
    model.add_argument(
        "--strategies",
        nargs="+",
        metavar="STRATEGY",
        help="query strategies to compare, by name, optionally with parameters as "
        "NAME:KEY=VALUE,KEY=VALUE, e.g. random margin 'vote_entropy:n_jobs=2'; 'skal run "
        "--list' shows the names (class names from skal.strategies are accepted too) "
        "(default: random margin entropy vote_entropy)",
    )
    model.add_argument(
        "--committee-size",
        type=int,
        metavar="N",
        help="members of the committee used by committee strategies such as vote_entropy "
        "(default: 5)",
    )
    model.add_argument(
        "--epochs", type=int, metavar="N", help="training epochs of the torch networks "
        "(default: 10)"
    )
    model.add_argument(
        "--mc-samples", type=int, metavar="K", help="MC-dropout samples of the torch networks "
        "for bald, batchbald and the like (default: 20)"
    )
    model.add_argument(
        "--lr", type=float, metavar="RATE", help="Adam learning rate of the torch networks "
        "(default: 0.01)"
    )
    model.add_argument(
        "--validation-size",
        type=int,
        metavar="N",
        help="hold N pool rows out as a validation set: the torch networks then stop training "
        "when validation accuracy has not improved for --patience epochs and keep their best "
        "epoch (default: 0, no validation set; train --epochs epochs)",
    )
    model.add_argument(
        "--patience", type=int, metavar="N", help="early-stopping patience in epochs, with "
        "--validation-size (default: 3)"
    )
    model.add_argument(
        "--epoch-samples",
        type=int,
        metavar="N",
        help="rows drawn per training epoch of the torch networks, cycling a small labelled "
        "set (default: one pass over it)",
    )
    model.add_argument(
        "--list", action="store_true", help="list the strategies, models and data sets, then exit"
    )
    loop = parser.add_argument_group("the active-learning loop")
    loop.add_argument(
        "--budget", type=int, metavar="N", help="labels per run, initial ones included "
        "(default: 300)"
    )
    loop.add_argument(
        "--batch-size", type=int, metavar="N", help="rows labelled per cycle (default: 10)"
    )
    loop.add_argument(
        "--initial-size",
        type=int,
        metavar="N",
        help="rows labelled before the first query (default: 20)",
    )
    loop.add_argument(
        "--initial-strategy",
        choices=INITIAL_STRATEGIES,
        help="how the initial rows are picked: at random, or balanced, the same number of "
        "each class (--initial-size must be a multiple of the number of classes), as the "
        "BatchBALD paper does (default: random)",
    )
    loop.add_argument(
        "--repeats", type=int, metavar="N", help="runs per strategy, each with its own seed "
        "(default: 5)"
    )
    loop.add_argument(
        "--target",
        type=float,
        metavar="SCORE",
        help="test accuracy for the 'labels to target' columns (default: the final accuracy "
        "of random sampling, rounded down to 0.01)",
    )
    run = parser.add_argument_group("running")
    run.add_argument(
        "--n-jobs",
        type=int,
        metavar="N",
        help="runs in parallel, through joblib (-1: all cores) (default: -1)",
    )
    run.add_argument(
        "--device", help="torch device of the networks: cpu, cuda, cuda:1 ... (default: cpu)"
    )
    run.add_argument("--seed", type=int, help="seed of the split and the repeats (default: 0)")
    run.add_argument(
        "--output",
        metavar="DIR",
        help="output folder (default: a new folder skal-results/DATA-DATE-TIME)",
    )
    run.add_argument(
        "--config",
        metavar="FILE",
        help="read options from a TOML file (e.g. the config.toml of an earlier run); "
        "options given on the command line override it",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")


def _read_config(path):
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError("--config needs Python 3.11 or the tomli package") from None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        with path.open("rb") as fh:
            config = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None
    config = {key.replace("-", "_"): value for key, value in config.items()}
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(
            f"config file {path} has unknown option(s) {', '.join(unknown)}; known: "
            f"{', '.join(DEFAULTS)}"
        )
    return config


def resolve_options(args):
    """The options in effect: defaults, then the ``--config`` file, then the command line."""
    options = dict(DEFAULTS)
    if getattr(args, "config", None):
        options.update(_read_config(args.config))
    for key in DEFAULTS:
        value = getattr(args, key, None)
        if value is not None:
            options[key] = value
    if isinstance(options["strategies"], str):
        options["strategies"] = options["strategies"].split()
    # the strategies' one names, so config.toml and the tables never show an alias
    registry = strategy_registry()
    options["strategies"] = [canonical_spec(str(spec), registry) for spec in options["strategies"]]
    for key in ("budget", "batch_size", "initial_size", "repeats", "committee_size", "epochs",
                "mc_samples", "patience"):
        if not isinstance(options[key], int) or isinstance(options[key], bool) or options[key] < 1:
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer, "
                             f"got {options[key]!r}")
    for key in ("validation_size", "epoch_samples"):
        value = options[key]
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                  or value < 0):
            raise ValueError(f"--{key.replace('_', '-')} must be a non-negative integer, "
                             f"got {value!r}")
    if options["initial_strategy"] not in INITIAL_STRATEGIES:
        raise ValueError(f"--initial-strategy must be one of {', '.join(INITIAL_STRATEGIES)}, "
                         f"got {options['initial_strategy']!r}")
    if options["validation_size"] and options["model"] not in NET_MODELS:
        raise ValueError(f"--validation-size is for early stopping of the torch models "
                         f"({', '.join(NET_MODELS)}), not {options['model']!r}")
    if options["pool_size"] is not None and options["pool_size"] < 2:
        raise ValueError(f"--pool-size must be at least 2, got {options['pool_size']}")
    if not 0 < options["test_size"] < 1:
        raise ValueError(f"--test-size must be between 0 and 1, got {options['test_size']}")
    if options["initial_size"] > options["budget"]:
        raise ValueError(
            f"--initial-size {options['initial_size']} is larger than --budget "
            f"{options['budget']}"
        )
    return options


def _toml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def write_config(options, path):
    """Write ``options`` as TOML (None values are left out, meaning "the default")."""
    lines = ["# skal run options; rerun with: skal run --config " + path.name]
    for key, value in options.items():
        if value is not None:
            lines.append(f"{key} = {_toml_value(value)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- strategies
# One name per strategy: what `skal run --list`, the default list, the results tables and the
# docs show. Other spellings (the class name, its snake_case with or without "_sampling") are
# accepted on input and replaced by this name.
STRATEGY_NAMES = {
    "RandomSampling": "random",
    "LeastConfidence": "least_confidence",
    "MarginSampling": "margin",
    "EntropySampling": "entropy",
    "DecisionMargin": "decision_margin",
    "VoteEntropy": "vote_entropy",
    "KLDivergence": "kl_divergence",
    "ConsensusEntropy": "consensus_entropy",
    "BALD": "bald",
    "BatchBALD": "batchbald",
    "StochasticBALD": "stochastic_bald",
    "CoreSet": "coreset",
    "BADGE": "badge",
    "RankedBatch": "ranked_batch",
    "TypiClust": "typiclust",
    "ProbCover": "probcover",
    "ActiveLearningByLearning": "albl",
}


def _snake(name):
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def strategy_name(cls):
    """The one name ``skal run`` shows for strategy class ``cls``."""
    if cls.__name__ in STRATEGY_NAMES:
        return STRATEGY_NAMES[cls.__name__]
    snake = _snake(cls.__name__)  # a strategy added without a name here
    return snake[: -len("_sampling")] if snake.endswith("_sampling") else snake


def strategy_registry():
    """``{name: class}`` of every strategy in :mod:`skal.strategies`, under several spellings.

    A class ``MarginSampling`` answers to its name ``margin`` (:func:`strategy_name`) and to
    ``MarginSampling``, ``marginsampling`` and ``margin_sampling``.
    """
    import skal.strategies as module
    from skal.strategies import QueryStrategy

    registry = {}
    aliases = {}
    for class_name in module.__all__:
        cls = getattr(module, class_name)
        if not isinstance(cls, type) or not issubclass(cls, QueryStrategy):
            continue
        if getattr(cls, "__abstractmethods__", None):
            continue
        registry[strategy_name(cls)] = cls
        snake = _snake(class_name)
        for alias in (class_name, class_name.lower(), snake, snake.replace("_", "")):
            aliases.setdefault(alias, cls)
    # a name always wins over another class's alias
    return {**aliases, **registry}


def strategy_names(registry=None):
    """The names of the strategies, sorted, one per strategy."""
    registry = strategy_registry() if registry is None else registry
    return sorted({strategy_name(cls) for cls in registry.values()})


def _lookup(name, registry):
    cls = registry.get(name.strip()) or registry.get(name.strip().lower())
    if cls is None:
        raise ValueError(
            f"unknown strategy {name.strip()!r}; known: {', '.join(strategy_names(registry))}"
        )
    return cls


def canonical_spec(spec, registry=None):
    """``spec`` with the strategy's one name and no spaces: ``"MarginSampling: a=1"`` ->
    ``"margin:a=1"``. The name of the strategy in tables and ``config.toml``."""
    registry = strategy_registry() if registry is None else registry
    name, sep, params_text = spec.partition(":")
    params = ",".join(filter(None, (p.strip().replace(" ", "") for p in params_text.split(","))))
    return strategy_name(_lookup(name, registry)) + (f":{params}" if params else "")


def _literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_strategy(spec, registry=None):
    """Build a strategy from ``"name"`` or ``"name:key=value,key=value"``."""
    registry = strategy_registry() if registry is None else registry
    name, _, params_text = spec.partition(":")
    cls = _lookup(name, registry)
    params = {}
    for item in filter(None, (p.strip() for p in params_text.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"strategy parameter {item!r} in {spec!r} is not KEY=VALUE")
        params[key.strip()] = _literal(value.strip())
    valid = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no parameter {', '.join(unknown)}; it has: "
            f"{', '.join(valid) or 'none'}"
        )
    return cls(**params)


# ---------------------------------------------------------------------------- data and models
def load_data(options):
    """Return ``(X_pool, X_test, y_pool, y_test, name)`` for the ``data`` option."""
    from sklearn.model_selection import train_test_split

    source = str(options["data"])
    seed = options["seed"]
    path = Path(source)
    if source in BUNDLED_DATA:
        import sklearn.datasets

        X, y = getattr(sklearn.datasets, f"load_{source}")(return_X_y=True)
        name = source
    elif path.is_dir() or source.startswith("mnist"):
        return _load_mnist(source, options)
    elif path.suffix.lower() in (".csv", ".txt", ".gz") or path.exists():
        X, y = _load_csv(path, options["label_column"])
        name = path.stem
    else:
        raise ValueError(
            f"unknown data set {source!r}: use one of {', '.join(BUNDLED_DATA)}, a CSV file "
            "or a folder with the MNIST idx files"
        )
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=options["test_size"], random_state=seed, stratify=y
    )
    X_pool, y_pool = _subsample(X_pool, y_pool, options)
    return X_pool, X_test, y_pool, y_test, name


def _subsample(X_pool, y_pool, options):
    size = options["pool_size"]
    if size is None or size >= len(y_pool):
        return X_pool, y_pool
    rows = np.sort(np.random.RandomState(options["seed"]).choice(len(y_pool), size, replace=False))
    return X_pool[rows], y_pool[rows]


def _load_csv(path, label_column):
    import pandas as pd

    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    frame = pd.read_csv(path)
    if label_column not in frame.columns:
        raise ValueError(
            f"label column {label_column!r} is not in {path.name}; its columns are: "
            f"{', '.join(map(str, frame.columns))} (choose one with --label-column)"
        )
    y = frame.pop(label_column).to_numpy()
    non_numeric = [str(c) for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise ValueError(
            f"{path.name}: feature column(s) {', '.join(non_numeric)} are not numeric; encode "
            "them first (skal run uses the CSV's other columns as numeric features)"
        )
    if frame.shape[1] == 0:
        raise ValueError(f"{path.name} has no feature columns besides {label_column!r}")
    if frame.isna().any().any():
        raise ValueError(f"{path.name} has missing feature values; fill or drop them first")
    if pd.isna(y).any():
        raise ValueError(f"{path.name} has rows without a label in {label_column!r}")
    return frame.to_numpy(dtype=float), y


def _load_mnist(source, options):
    try:
        from skal.datasets import load_mnist_idx
    except ImportError:
        raise ValueError(
            "reading MNIST idx files needs skal.datasets, not in this installation"
        ) from None
    from sklearn.model_selection import train_test_split

    folder = Path(source.partition(":")[2] if source.startswith("mnist:") else source)
    if not folder.is_dir():
        raise FileNotFoundError(f"MNIST folder not found: {folder}")
    X_test, y_test = load_mnist_idx(folder, kind="t10k")
    try:
        X_pool, y_pool = load_mnist_idx(folder, kind="train")
    except FileNotFoundError:
        # Only the test files: split them like any other data set.
        X_pool, X_test, y_pool, y_test = train_test_split(
            X_test, y_test, test_size=options["test_size"], random_state=options["seed"],
            stratify=y_test,
        )
    X_pool, y_pool = _subsample(X_pool, y_pool, options)
    return X_pool, X_test, y_pool, y_test, "mnist"


def make_model(options, n_features, n_classes, validation=None):
    """The estimator for the ``model`` option; ``validation`` is ``(classes, X, y)`` for early
    stopping of the torch networks."""
    name = options["model"]
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if name == "logreg":
        from sklearn.linear_model import LogisticRegression

        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(n_estimators=100)
    if name == "extra_trees":
        from sklearn.ensemble import ExtraTreesClassifier

        return ExtraTreesClassifier(n_estimators=100)
    if name == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=5))
    if name == "naive_bayes":
        from sklearn.naive_bayes import GaussianNB

        return GaussianNB()
    if name == "linear_svm":
        from sklearn.svm import LinearSVC

        return make_pipeline(StandardScaler(), LinearSVC())
    if name in NET_MODELS:
        return _make_net(name, options, n_features, n_classes, validation)
    raise ValueError(
        f"unknown model {name!r}; known: {', '.join(CLASSICAL_MODELS + NET_MODELS)}"
    )


def _make_net(name, options, n_features, n_classes, validation=None):
    try:
        from skal.nets import MLP, MNISTConvNet, NetClassifier
    except ImportError as exc:
        raise ValueError(
            f"model {name!r} needs torch, skorch and skal.nets: install skal[torch] ({exc})"
        ) from None
    if name == "cnn" and n_features != 784:
        raise ValueError(
            f"model 'cnn' is the MNIST network and needs 28x28 images (784 features); the data "
            f"have {n_features}. Use --model mlp"
        )
    module = MNISTConvNet if name == "cnn" else MLP
    params = {"device": options["device"], "max_epochs": options["epochs"],
              "n_samples": options["mc_samples"]}
    if options["lr"] is not None:
        params["lr"] = options["lr"]
    if validation is not None:
        from skal.experiments._recipes import early_stopping_params

        classes, X_valid, y_valid = validation
        # The network predicts class indices; the validation targets must be those.
        params.update(classes=classes, **early_stopping_params(
            X_valid, np.searchsorted(classes, y_valid), patience=options["patience"],
            epoch_samples=options["epoch_samples"]))
    elif options["epoch_samples"]:
        from skal.experiments._recipes import fixed_length_loader

        params.update(iterator_train=fixed_length_loader,
                      iterator_train__epoch_samples=options["epoch_samples"])
    return NetClassifier(module, **params)


def _check_device(options):
    device = str(options["device"])
    if not device.startswith("cuda"):
        return
    if options["model"] not in NET_MODELS:
        print(f"note: --device {device} applies to the torch models only; "
              f"{options['model']} runs on the CPU", file=sys.stderr)
        return
    import torch

    if not torch.cuda.is_available():
        raise ValueError(f"--device {device} was asked for, but torch sees no CUDA GPU")


def make_learners(options, estimator):
    """``{strategy spec: learner}``, each strategy wrapped in the learner it needs."""
    from skal import ActiveLearner, CommitteeLearner

    registry = strategy_registry()
    learners = {}
    common = {"batch_size": options["batch_size"], "n_initial": options["initial_size"]}
    for spec in options["strategies"]:
        strategy = parse_strategy(spec, registry)
        spec = canonical_spec(spec, registry)
        kind = type(strategy).__name__
        if kind in _BAYESIAN_STRATEGIES and not hasattr(estimator, "predict_proba_samples"):
            raise ValueError(
                f"strategy {spec!r} needs posterior samples, but model {options['model']!r} is "
                "a single model without them; use --model mlp or cnn (MC dropout) or a "
                "committee strategy such as vote_entropy"
            )
        if kind in _COMMITTEE_STRATEGIES and not hasattr(estimator, "predict_proba_samples"):
            if options["committee_size"] < 2:
                raise ValueError(
                    f"strategy {spec!r} needs posterior samples from a committee, but "
                    f"--committee-size {options['committee_size']} is a single model; use "
                    "--committee-size 2 or more"
                )
            learner = CommitteeLearner(
                estimator, strategy, n_estimators=options["committee_size"], **common
            )
        else:
            learner = ActiveLearner(estimator, strategy, **common)
        if spec in learners:
            raise ValueError(f"strategy {spec!r} is given twice")
        learners[spec] = learner
    if not learners:
        raise ValueError("no strategies given")
    return learners


def _list_choices():
    registry = strategy_registry()
    print("strategies:", ", ".join(strategy_names(registry)))
    print("models:    ", ", ".join(CLASSICAL_MODELS + NET_MODELS))
    print("data:      ", ", ".join(BUNDLED_DATA), "| PATH.csv | MNIST_FOLDER")
    return 0


# ---------------------------------------------------------------------------- output
def _output_dir(options, args, data_name):
    if getattr(args, "output", None):
        out = Path(args.output)
    else:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path("skal-results") / f"{data_name}-{stamp}"
        suffix = 2
        while out.exists():
            out = Path("skal-results") / f"{data_name}-{stamp}-{suffix}"
            suffix += 1
    out.mkdir(parents=True, exist_ok=True)
    return out


def _fmt(value, digits=3):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    if isinstance(value, float) and value.is_integer() and digits == 0:
        return str(int(value))
    return f"{value:.{digits}f}"


def format_table(summary, comparison, target):
    """The printed results table, one row per strategy."""
    headers = ["strategy", "final acc", "AULC"]
    if target is not None:
        headers.append(f"labels to {target:g} (25/50/75 %)")  # "never": not within budget
    headers += ["ΔAULC vs random", "wins", "p"]
    rows = []
    for learner, row in summary.iterrows():
        cells = [
            str(learner),
            f"{_fmt(row['final_score_mean'])} ± {_fmt(row['final_score_std'])}",
            f"{_fmt(row['aulc_mean'])} ± {_fmt(row['aulc_std'])}",
        ]
        if target is not None:
            cells.append(" / ".join(
                _fmt(row[f"labels_to_target_q{q}"], 0) for q in (25, 50, 75)
            ))
        if comparison is not None and learner in comparison.index:
            c = comparison.loc[learner]
            cells += [f"{c['aulc_diff_mean']:+.3f}", f"{c['wins']}/{c['n_pairs']}",
                      _fmt(c["p_value"], 2)]
        else:
            cells += ["(baseline)" if comparison is not None else "-", "", ""]
        rows.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def _default_target(summary, comparison):
    if comparison is None or comparison.empty:
        return None
    baseline = comparison["baseline"].iloc[0]
    return math.floor(summary.loc[baseline, "final_score_mean"] * 100) / 100


# ---------------------------------------------------------------------------- run
def run(args):
    """Run ``skal run`` with parsed ``args``; return the exit status."""
    if getattr(args, "list", False):
        return _list_choices()
    options = resolve_options(args)
    if options["recipe"] is not None:
        if options["recipe"] not in RECIPES:
            raise ValueError(f"unknown recipe {options['recipe']!r}; known: {', '.join(RECIPES)}")
        from skal.experiments._tabular_benchmark import run_recipe

        out = _output_dir(options, args, "tabular-benchmark")
        write_config(options, out / "config.toml")
        return run_recipe(options, out, progress=not getattr(args, "quiet", False))
    _check_device(options)
    X_pool, X_test, y_pool, y_test, data_name = load_data(options)
    n_classes = np.unique(y_pool).size
    X_pool, y_pool, validation = _split_validation(X_pool, y_pool, options)
    estimator = make_model(options, X_pool.shape[1], n_classes, validation)
    learners = make_learners(options, estimator)
    initial_strategy = _initial_strategy(options, y_pool)

    from skal.experiments import compare_to_random, run_experiment, summarize

    budget = min(options["budget"], len(y_pool))
    held_out = f", {len(validation[2])} validation rows" if validation is not None else ""
    print(
        f"skal run: {data_name} ({len(y_pool)} pool rows{held_out}, {len(y_test)} test rows, "
        f"{n_classes} classes), model {options['model']}, {len(learners)} strategies x "
        f"{options['repeats']} repeats, budget {budget} labels "
        f"({options['initial_size']} {options['initial_strategy']} initial + batches of "
        f"{options['batch_size']})",
        flush=True,
    )
    result = run_experiment(
        learners,
        X_pool,
        y_pool,
        X_test,
        y_test,
        budget=budget,
        n_repeats=options["repeats"],
        initial_strategy=initial_strategy,
        random_state=options["seed"],
        n_jobs=options["n_jobs"],
        progress=not getattr(args, "quiet", False),
    )
    # the strategy column holds class names; skal run shows its own names throughout
    names = {key: strategy_name(type(learner.query_strategy)) for key, learner in learners.items()}
    result["strategy"] = result["learner"].map(names)
    try:
        comparison = compare_to_random(result)
    except ValueError:
        comparison = None
    target = options["target"]
    if target is None:
        target = _default_target(summarize(result), comparison)
    summary = summarize(result, target=target)
    out = _output_dir(options, args, data_name)
    _write_outputs(out, options, result, summary, comparison, target)
    print()
    print(format_table(summary, comparison, target))
    if target is not None and options["target"] is None:
        print(f"\nlabels to {target:g}: labels each strategy needed to reach the final "
              "accuracy of random sampling (rounded down); set it with --target")
    print(f"AULC: mean test accuracy over the labelling budget (area under the learning "
          f"curve / ({budget} - {options['initial_size']}) labels), in [0, 1]")
    print(f"\nresults written to {out}/")
    return 0


def _split_validation(X_pool, y_pool, options):
    """Hold ``validation_size`` pool rows out for early stopping; return the rest and them."""
    size = options["validation_size"]
    if not size:
        return X_pool, y_pool, None
    if size > len(y_pool) - options["budget"]:
        raise ValueError(f"--validation-size {size} leaves fewer pool rows than --budget "
                         f"{options['budget']}")
    classes = np.unique(y_pool)
    rows = np.random.RandomState(options["seed"]).permutation(len(y_pool))
    held, kept = np.sort(rows[:size]), np.sort(rows[size:])
    return X_pool[kept], y_pool[kept], (classes, X_pool[held], y_pool[held])


def _initial_strategy(options, y_pool):
    if options["initial_strategy"] != "balanced":
        return None
    from skal.experiments._recipes import BalancedInitialSet

    n_classes = np.unique(y_pool).size
    per_class, rest = divmod(options["initial_size"], n_classes)
    if rest or not per_class:
        raise ValueError(f"--initial-strategy balanced needs --initial-size a multiple of the "
                         f"{n_classes} classes, got {options['initial_size']}")
    return BalancedInitialSet(y_pool, n_per_class=per_class)


def _write_outputs(out, options, result, summary, comparison, target):
    csv = result.copy()
    csv["indices"] = [" ".join(map(str, rows)) for rows in csv["indices"]]
    csv.to_csv(out / "results.csv", index=False)
    table = summary if comparison is None else summary.join(comparison)
    table.to_csv(out / "summary.csv")
    write_config(options, out / "config.toml")
    payload = {
        "options": options,
        "target": target,
        "summary": json.loads(table.reset_index().to_json(orient="records")),
        "results": json.loads(result.to_json(orient="records")),
    }
    (out / "results.json").write_text(json.dumps(payload, indent=1), encoding="utf-8")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no plot was drawn "
              "(pip install 'skal[plot]')", file=sys.stderr)
        return
    from skal.experiments import plot_labels_to_target, plot_learning_curves

    ncols = 2 if target is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, 4.6), layout="constrained",
                             squeeze=False)
    plot_learning_curves(result, target=target, ax=axes[0, 0])
    axes[0, 0].set_ylabel("test accuracy")
    if target is not None:
        plot_labels_to_target(result, target, ax=axes[0, 1])
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
