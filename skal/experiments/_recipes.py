"""Pieces of published active-learning protocols: a class-balanced initial set, fixed-length
training epochs and validation accuracy for early stopping of :mod:`skal.nets` networks.

torch is imported only when a network trains, so importing this module stays light.
"""

import numbers

import numpy as np
from sklearn.semi_supervised import LabelSpreading
from sklearn.utils import check_random_state

_MAX_SEED = np.iinfo(np.int32).max


def class_balanced_rows(y, n_per_class, random_state=None):
    """Row indices holding ``n_per_class`` rows of every class of ``y``, drawn at random.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        The labels.
    n_per_class : int
        Rows per class.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw.

    Returns
    -------
    rows : ndarray of shape (n_classes * n_per_class,)
        Sorted by class, then in drawing order.

    Examples
    --------
    >>> from skal.experiments import class_balanced_rows
    >>> y = [0, 1, 0, 1, 2, 2, 0]
    >>> sorted(int(y[i]) for i in class_balanced_rows(y, 2, random_state=0))
    [0, 0, 1, 1, 2, 2]
    """
    y = np.asarray(y)
    if (
        isinstance(n_per_class, bool)
        or not isinstance(n_per_class, numbers.Integral)
        or n_per_class < 1
    ):
        raise ValueError(f"n_per_class must be a positive integer, got {n_per_class!r}.")
    rng = check_random_state(random_state)
    rows = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if members.size < n_per_class:
            raise ValueError(
                f"Class {label!r} has {members.size} row(s), fewer than n_per_class={n_per_class}."
            )
        rows.append(rng.choice(members, n_per_class, replace=False))
    return np.concatenate(rows).astype(np.intp)


class BalancedInitialSet:
    """A simulated run's initial labelled set with the same number of rows of every class.

    An ``initial_strategy`` for :class:`~skal.ActiveLearner` in simulations (``fit`` with a
    ``budget``), where the oracle's labels are known: it returns ``n_per_class`` rows of every
    class of ``y``, drawn from the learner's ``random_state``. Learners given the same seed
    (as :func:`~skal.experiments.run_experiment` does within a repeat) start from the same
    rows, whatever their query strategy. This is how the BatchBALD paper (Kirsch et al. 2019)
    starts its MNIST runs: 20 labels, 2 per digit. It peeks at labels a real run would not
    have, so it belongs to benchmarks, not to labelling sessions.

    Parameters
    ----------
    y : array-like of shape (n_pool,)
        The labels of the rows the learner simulates on (the ``y`` given to ``fit``).
    n_per_class : int, default=2
        Rows per class; ``n_initial`` must equal ``n_per_class`` times the number of classes.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skal import ActiveLearner
    >>> from skal.experiments import BalancedInitialSet
    >>> X, y = load_digits(return_X_y=True)
    >>> learner = ActiveLearner(budget=20, n_initial=20, random_state=0,
    ...                         initial_strategy=BalancedInitialSet(y, n_per_class=2))
    >>> np.bincount(learner.fit(X, y).y_labeled_).tolist()
    [2, 2, 2, 2, 2, 2, 2, 2, 2, 2]
    """

    def __init__(self, y, n_per_class=2):
        self.y = y
        self.n_per_class = n_per_class

    def __call__(self, learner, X_pool, batch_size):
        y = np.asarray(self.y)
        if y.shape[0] != X_pool.shape[0]:
            raise ValueError(
                f"BalancedInitialSet holds {y.shape[0]} labels but the pool has "
                f"{X_pool.shape[0]} rows; give it the y passed to fit (every row labelled)."
            )
        n_classes = np.unique(y).size
        if batch_size != self.n_per_class * n_classes:
            raise ValueError(
                f"n_initial={batch_size} is not n_per_class={self.n_per_class} x {n_classes} "
                "classes."
            )
        seed = check_random_state(getattr(learner, "random_state", None)).randint(_MAX_SEED)
        return class_balanced_rows(y, self.n_per_class, random_state=seed)

    def __repr__(self):
        return f"BalancedInitialSet(n_per_class={self.n_per_class})"


def fixed_length_loader(dataset, *, epoch_samples, batch_size, shuffle=None, **kwargs):
    """A training ``DataLoader`` whose epoch draws ``epoch_samples`` rows, cycling the data.

    Pass it as ``iterator_train`` of a :class:`~skal.nets.NetClassifier` (with
    ``iterator_train__epoch_samples=N``) so that an epoch on 20 labels is not a single
    gradient step: each epoch is ``max(epoch_samples, len(dataset))`` rows, whole shuffled
    passes over the data followed by a partial one, so early stopping sees comparable epochs
    whatever the labelled-set size. The BatchBALD paper's MNIST runs used 5,056 rows per
    epoch (79 batches of 64).

    Parameters
    ----------
    dataset : torch Dataset
    epoch_samples : int
        Rows per epoch (at least the size of the data).
    batch_size : int
    shuffle : ignored
        skorch passes it; the sampler shuffles.
    **kwargs
        Passed to :class:`torch.utils.data.DataLoader`.

    Returns
    -------
    loader : torch.utils.data.DataLoader
    """
    from torch.utils.data import DataLoader, RandomSampler

    n_rows = max(int(epoch_samples), len(dataset))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=RandomSampler(dataset, num_samples=n_rows),
        **kwargs,
    )


def validation_accuracy(net, dataset, y):
    """Accuracy of a skorch network on its validation data, for ``skorch.callbacks.EpochScoring``.

    Uses the cached forward pass of the epoch (``use_caching=True``), so it costs nothing
    extra. ``y`` is the encoded targets skorch passes (class indices, as the network sees
    them).
    """
    import torch

    logits = net.forward(dataset)
    predicted = torch.as_tensor(logits).argmax(dim=1).cpu().numpy()
    if y is None:
        y = np.concatenate([np.asarray(batch[1]) for batch in net.get_iterator(dataset)])
    return float(np.mean(predicted == np.asarray(y)))


def _silent(*args, **kwargs):
    """A sink for skorch's EarlyStopping messages (a module function, so it pickles)."""


def early_stopping_params(X_valid, y_valid, *, patience=3, epoch_samples=None):
    """NetClassifier parameters for training with early stopping on a fixed validation set.

    Validation accuracy after every epoch (skorch's ``predefined_split``), training stops
    after ``patience`` epochs without improvement and the best epoch's weights are restored,
    as in the BatchBALD paper. The validation labels must be the class indices the network
    predicts (``0..n_classes-1``, e.g. MNIST digits with every digit labelled).

    Parameters
    ----------
    X_valid : ndarray of shape (n_valid, n_features), float32
    y_valid : ndarray of shape (n_valid,), int
    patience : int, default=3
    epoch_samples : int or None, default=None
        Rows per training epoch (see :func:`fixed_length_loader`); None: one pass.

    Returns
    -------
    params : dict
        Keyword arguments for :class:`~skal.nets.NetClassifier`.
    """
    from skorch.callbacks import EarlyStopping, EpochScoring
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    X_valid = np.ascontiguousarray(X_valid, dtype=np.float32)
    y_valid = np.asarray(y_valid, dtype=np.int64)
    params = {
        "train_split": predefined_split(Dataset(X_valid, y_valid)),
        # skorch's default valid_acc scores through predict, which NetClassifier validates
        # as an array; this one reads the epoch's cached logits instead.
        "callbacks__valid_acc": None,
        "callbacks": [
            (
                "valid_accuracy",
                EpochScoring(validation_accuracy, lower_is_better=False, name="valid_accuracy",
                             use_caching=True),
            ),
            (
                "early_stopping",
                EarlyStopping(monitor="valid_accuracy", lower_is_better=False,
                              patience=patience, threshold=0.0, load_best=True,
                              sink=_silent),
            ),
        ],
    }
    if epoch_samples:
        params["iterator_train"] = fixed_length_loader
        params["iterator_train__epoch_samples"] = int(epoch_samples)
    return params


class ReachingLabelSpreading(LabelSpreading):
    """scikit-learn's ``LabelSpreading``, with a distribution for every row.

    With a kNN graph and few labels, rows in a part of the graph that no labelled row reaches
    get all-zero label distributions, and ``predict_proba`` NaN (``0 / 0``), which
    uncertainty strategies rightly refuse (and ``predict`` turns into the first class).
    Those rows get the labelled rows' class frequencies instead: the model knows nothing
    about them. Everything else is ``LabelSpreading``'s.
    """

    def fit(self, X, y):
        super().fit(X, y)
        distributions = self.label_distributions_
        # scikit-learn leaves such rows all zero (it divides by 1 where the sum is 0)
        unreached = ~np.isfinite(distributions).all(axis=1) | (distributions.sum(axis=1) <= 0)
        if unreached.any():
            y = np.asarray(y)
            known = y[y != -1]
            prior = (known[:, None] == self.classes_[None, :]).mean(axis=0)
            self.label_distributions_[unreached] = prior
            self.transduction_ = self.classes_[np.argmax(self.label_distributions_, axis=1)]
        return self

