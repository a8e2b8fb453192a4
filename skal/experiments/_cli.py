"""``skal run``: a simulated active-learning comparison from the command line.

Options come from three places, later ones winning: built-in defaults, a TOML file given with
``--config``, and the command line. The options used are written to ``config.toml`` in the
output folder, so ``skal run --config that/config.toml`` reruns the experiment exactly.
"""

import argparse
import ast
import datetime
import functools
import json
import re
import sys
from pathlib import Path

import numpy as np

from skal.experiments._tasks import DATASETS, TASKS, task_for

BUNDLED_DATA = tuple(DATASETS)
CLASSICAL_MODELS = tuple(TASKS["classification"].models)
NET_MODELS = ("mlp", "cnn")

DEFAULTS = {
    "data": "digits",
    "label_column": "label",
    "test_size": 0.25,
    "pool_size": None,
    # None: the task's default (classification: logreg with random, margin, entropy and
    # vote_entropy; regression and multi-label: see skal/experiments/_tasks.py)
    "model": None,
    "strategies": None,
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
    # "contrastive": pretrain a self-supervised encoder on the pool images once and run
    # everything (models, strategies, test set) on its embeddings
    "embedding": None,
    "embedding_epochs": 30,
    # a published benchmark run as a whole: "tabular_benchmark" (Lu, Li & Lin; data is the
    # folder of its CSVs, datasets a list of their names or all of them)
    "recipe": None,
    "datasets": None,
}
RECIPES = ("tabular_benchmark",)
INITIAL_STRATEGIES = ("random", "balanced", "typiclust")
EMBEDDINGS = ("contrastive",)

# Strategies that need posterior samples from a model that samples itself (MC dropout);
# the ones a committee can serve are in each task's committee_for.
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
        "  skal run --data diabetes                   # regression: R2 and RMSE\n"
        "  skal run --data multilabel                 # multi-label: micro-F1, macro-F1, Hamming\n"
        "  skal run --config skal-results/digits-20250101-120000/config.toml  # rerun"
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar="NAME_OR_PATH",
        help="a scikit-learn data set (classification: "
        + ", ".join(n for n, (kind, _) in DATASETS.items() if kind == "classification")
        + "; regression: "
        + ", ".join(n for n, (kind, _) in DATASETS.items() if kind == "regression")
        + "; multi-label: "
        + ", ".join(n for n, (kind, _) in DATASETS.items() if kind == "multilabel")
        + "), a CSV file with a label column, or a folder holding the MNIST idx files "
        "(train-*/t10k-*-idx?-ubyte[.gz]); the data set decides the task (default: digits)",
    )
    data.add_argument(
        "--label-column", metavar="COLUMN", help="the label column of a CSV file (default: label)"
    )
    data.add_argument(
        "--test-size",
        type=float,
        metavar="FRACTION",
        help="fraction of the data held out as the test set, stratified for classes "
        "(default: 0.25; MNIST uses its own test files)",
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
        help="the model: for classification " + ", ".join(CLASSICAL_MODELS) + ", or the "
        "torch networks " + ", ".join(NET_MODELS) + " (need skal[torch]); for regression "
        + ", ".join(TASKS["regression"].models) + "; for multi-label "
        + ", ".join(TASKS["multilabel"].models) + " (default: logreg; regression: gp; a "
        "regression model makes a CSV's label column a regression target)",
    )
    model.add_argument(
        "--strategies",
        nargs="+",
        metavar="STRATEGY",
        help="query strategies to compare, by name, optionally with parameters as "
        "NAME:KEY=VALUE,KEY=VALUE, e.g. random margin 'vote_entropy:n_jobs=2'; 'skal run "
        "--list' shows the names (class names from skal.strategies are accepted too) "
        "(default: random margin entropy vote_entropy; regression: random variance greedy "
        "greedy:space=x emcm coreset; multi-label: random multilabel_margin "
        "multilabel_margin:aggregate=mean mmc adaptive_multilabel)",
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
        "--embedding",
        choices=EMBEDDINGS,
        help="contrastive: pretrain a self-supervised (SimCLR) encoder on the pool images "
        "once, without labels, and run every model and strategy on its embeddings; for "
        "square greyscale images such as digits and MNIST, needs skal[torch] (default: the "
        "features as they are)",
    )
    model.add_argument(
        "--embedding-epochs", type=int, metavar="N", help="pretraining epochs of "
        "--embedding contrastive (default: 30)"
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
        help="how the initial rows are picked: at random; balanced, the same number of "
        "each class (--initial-size must be a multiple of the number of classes), as the "
        "BatchBALD paper does; or typiclust, the most typical row of each of --initial-size "
        "clusters of the pool (TypiClust's cold start, no labels needed) (default: random)",
    )
    loop.add_argument(
        "--repeats", type=int, metavar="N", help="runs per strategy, each with its own seed "
        "(default: 5)"
    )
    loop.add_argument(
        "--target",
        type=float,
        metavar="SCORE",
        help="test score (accuracy, R2, micro-F1) for the 'labels to target' columns "
        "(default: the final score of random sampling, rounded down to 0.01)",
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
    task = _task(options)
    if options["model"] is None:
        options["model"] = task.default_model
    if options["strategies"] is None:
        options["strategies"] = list(task.default_strategies)
    if isinstance(options["strategies"], str):
        options["strategies"] = options["strategies"].split()
    # the strategies' one names, so config.toml and the tables never show an alias
    registry = strategy_registry()
    options["strategies"] = [canonical_spec(str(spec), registry) for spec in options["strategies"]]
    for key in ("budget", "batch_size", "initial_size", "repeats", "committee_size", "epochs",
                "mc_samples", "patience", "embedding_epochs"):
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
    if options["embedding"] not in (None, *EMBEDDINGS):
        raise ValueError(f"--embedding must be one of {', '.join(EMBEDDINGS)}, "
                         f"got {options['embedding']!r}")
    if options["embedding"] is not None and options["model"] in NET_MODELS:
        raise ValueError(f"--embedding {options['embedding']} feeds embeddings to a classical "
                         f"model; the torch network {options['model']!r} takes the images "
                         "themselves: drop --embedding or choose a classical --model")
    if options["initial_strategy"] == "balanced" and task.kind != "classification":
        raise ValueError(f"--initial-strategy balanced needs class labels; {options['data']} "
                         f"is a {task.kind} data set")
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
    "VarianceSampling": "variance",
    "EMCM": "emcm",
    "GreedySampling": "greedy",
    "MultilabelMargin": "multilabel_margin",
    "MMC": "mmc",
    "AdaptiveMultilabel": "adaptive_multilabel",
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
def _task(options):
    """The run's :class:`~skal.experiments._tasks.Task`, from its data set and model."""
    return task_for(str(options["data"]), options["model"], NET_MODELS)


def load_data(options, task=None):
    """Return ``(X_pool, X_test, y_pool, y_test, name)`` for the ``data`` option."""
    from sklearn.model_selection import train_test_split

    from skal.experiments._tasks import load_dataset

    source = str(options["data"])
    seed = options["seed"]
    path = Path(source)
    task = task or _task(options)
    if source in BUNDLED_DATA:
        X, y = load_dataset(source)
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
    if task.kind == "regression":
        y = np.asarray(y, dtype=np.float64)  # the regression learners' missing_label is NaN
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=options["test_size"], random_state=seed,
        stratify=y if task.stratify else None,
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


def make_model(options, n_features, n_classes, validation=None, task=None):
    """The estimator for the ``model`` option; ``validation`` is ``(classes, X, y)`` for early
    stopping of the torch networks."""
    name = options["model"]
    task = task or _task(options)
    if name in NET_MODELS:
        return _make_net(name, options, n_features, n_classes, validation)
    return task.models[name]()


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


class _TargetKind:
    """A stand-in learner that only says its kind of target, so a strategy that cannot
    handle it fails with the core's TypeError before anything runs."""

    def __init__(self, kind):
        self.target_kind_ = kind


def make_learners(options, estimator, task=None):
    """``{strategy spec: learner}``, each strategy wrapped in the learner it needs."""
    from skal.strategies._base import check_target_kind

    task = task or _task(options)
    registry = strategy_registry()
    learners = {}
    common = {"batch_size": options["batch_size"], "n_initial": options["initial_size"]}
    for spec in options["strategies"]:
        strategy = parse_strategy(spec, registry)
        spec = canonical_spec(spec, registry)
        check_target_kind(strategy, _TargetKind(task.kind))
        kind = type(strategy).__name__
        if kind in _BAYESIAN_STRATEGIES and not hasattr(estimator, "predict_proba_samples"):
            raise ValueError(
                f"strategy {spec!r} needs posterior samples, but model {options['model']!r} is "
                "a single model without them; use --model mlp or cnn (MC dropout) or a "
                "committee strategy such as vote_entropy"
            )
        learner = task.make_learner(estimator, strategy, options["committee_size"], **common)
        if spec in learners:
            raise ValueError(f"strategy {spec!r} is given twice")
        learners[spec] = learner
    if not learners:
        raise ValueError("no strategies given")
    return learners


def _list_choices():
    registry = strategy_registry()
    print("strategies:", ", ".join(strategy_names(registry)))
    for kind, task in TASKS.items():
        models = list(task.models) + (list(NET_MODELS) if kind == "classification" else [])
        data = [name for name, (data_kind, _) in DATASETS.items() if data_kind == kind]
        extra = " | PATH.csv | MNIST_FOLDER" if kind == "classification" else ""
        print(f"{kind}:")
        print("  data:      ", ", ".join(data) + extra)
        print("  models:    ", ", ".join(models))
        print("  strategies:", " ".join(task.default_strategies), "(default)")
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
    task = _task(options)
    X_pool, X_test, y_pool, y_test, data_name = load_data(options, task)
    n_classes = np.unique(y_pool).size if task.kind == "classification" else None
    X_pool, y_pool, validation = _split_validation(X_pool, y_pool, options)
    if options["embedding"] == "contrastive":
        X_pool, X_test = contrastive_embedding(X_pool, X_test, options)
    estimator = make_model(options, X_pool.shape[1], n_classes, validation, task)
    learners = make_learners(options, estimator, task)
    initial_strategy = _initial_strategy(options, y_pool)

    from skal.experiments import _report, run_experiment

    budget = min(options["budget"], len(y_pool))
    held_out = f", {len(validation[2])} validation rows" if validation is not None else ""
    print(
        f"skal run: {data_name} ({len(y_pool)} pool rows{held_out}, {len(y_test)} test rows, "
        f"{task.describe_targets(y_pool)}), model {options['model']}, {len(learners)} "
        "strategies x "
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
        scoring=_report.scoring(task.metrics),
        random_state=options["seed"],
        n_jobs=options["n_jobs"],
        progress=not getattr(args, "quiet", False),
    )
    # the strategy column holds class names; skal run shows its own names throughout
    names = {key: strategy_name(type(learner.query_strategy)) for key, learner in learners.items()}
    result["strategy"] = result["learner"].map(names)
    reports = _report.summarize_metrics(result, task.metrics, options["target"])
    target = reports[0].target
    out = _output_dir(options, args, data_name)
    _report.write_outputs(out, options, result, reports, write_config)
    print()
    print(_report.format_tables(reports))
    main_label = {"acc": "accuracy"}.get(task.metrics[0].label, task.metrics[0].label)
    if target is not None and options["target"] is None:
        print(f"\nlabels to {target:g}: labels each strategy needed to reach the final "
              f"{main_label} of random sampling (rounded down); set it with --target")
    print(f"AULC: mean test {main_label if len(reports) == 1 else 'score'} over the labelling "
          f"budget (area under the learning curve / ({budget} - {options['initial_size']}) "
          f"labels){', in [0, 1]' if task.kind == 'classification' else ''}; p: two-sided "
          "Wilcoxon signed-rank test of the paired AULC differences")
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


def contrastive_embedding(X_pool, X_test, options):
    """Pool and test rows embedded by a SimCLR encoder pretrained on the pool (no labels).

    The images are scaled to ``[0, 1]`` by the pool's largest value; the embeddings are
    scaled to unit length, so that Euclidean distances are cosine distances.
    """
    import time

    n_features = X_pool.shape[1]
    side = int(round(np.sqrt(n_features)))
    if side * side != n_features or side < 8:
        raise ValueError(f"--embedding contrastive needs square greyscale images (64 features "
                         f"for 8x8 digits, 784 for 28x28 MNIST); {options['data']} has "
                         f"{n_features} features per row")
    try:
        from skal.nets import ContrastiveEncoder, ConvEncoder
    except ImportError as exc:
        raise ImportError(f"--embedding contrastive needs torch: pip install 'skal[torch]' "
                          f"({exc})") from None
    scale = float(np.max(X_pool)) or 1.0
    small = side <= 12  # load_digits' 8x8 images: a smaller network, as in the benchmark
    encoder = ContrastiveEncoder(
        functools.partial(ConvEncoder, channels=(16, 32) if small else (32, 64)),
        n_components=64 if small else 128, max_epochs=options["embedding_epochs"],
        device=options["device"], random_state=options["seed"],
    )
    start = time.perf_counter()
    encoder.fit((X_pool / scale).astype(np.float32))
    print(f"skal run: contrastive encoder pretrained on {len(X_pool)} pool images in "
          f"{time.perf_counter() - start:.0f} s ({options['embedding_epochs']} epochs)",
          flush=True)

    def embed(X):
        Z = encoder.transform((X / scale).astype(np.float32))
        return Z / np.linalg.norm(Z, axis=1, keepdims=True)

    return embed(X_pool), embed(X_test)


def _initial_strategy(options, y_pool):
    if options["initial_strategy"] == "typiclust":
        from skal.strategies import TypiClust

        return TypiClust()  # unseeded: each repeat's learner seeds it
    if options["initial_strategy"] != "balanced":
        return None
    from skal.experiments._recipes import BalancedInitialSet

    n_classes = np.unique(y_pool).size
    per_class, rest = divmod(options["initial_size"], n_classes)
    if rest or not per_class:
        raise ValueError(f"--initial-strategy balanced needs --initial-size a multiple of the "
                         f"{n_classes} classes, got {options['initial_size']}")
    return BalancedInitialSet(y_pool, n_per_class=per_class)
