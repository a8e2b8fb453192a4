"""Variational adversarial active learning (Sinha, Ebrahimi & Darrell 2019): query the rows
that a discriminator, trained against a VAE, finds least likely to be labelled."""

import numbers

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples, check_array

from skal.strategies._base import TARGET_KINDS, QueryStrategy, _is_fitted, top_k

_MAX_SEED = np.iinfo(np.int32).max


class VAAL(QueryStrategy):
    """Variational adversarial active learning: the rows least like the labelled ones.

    A VAE learns a latent space of all rows, labelled (the learner's ``X_labeled_``) and
    unlabelled (the pool); a discriminator on that space learns to tell labelled rows (1)
    from unlabelled ones (0), while the VAE is trained to fool it into calling every row
    labelled. The rows the discriminator finds least likely to be labelled are the least
    represented by the labelled set; the strategy selects the ``batch_size`` with the lowest
    probability (score ``1 - D(mu(x))``). Both networks are trained afresh at every query,
    from the strategy's ``random_state``.

    VAAL is task-agnostic: it uses only the rows, never the learner's predictions, so it
    works with any learner (a classical estimator, a network, a regressor). Here the VAE and
    the discriminator are fully connected networks on flat rows (tabular features or
    flattened images), with the features standardised; ``architecture="conv"`` gives 28x28
    images a small convolutional VAE (the paper's is larger, for 32x32 and up). With no
    labelled row (a cold start) there is nothing to discriminate: the query is a
    ``NotFittedError`` that says to start with another strategy (e.g.
    ``initial_strategy=RandomSampling()``). The training loop and the losses are
    :func:`skal.nets._vaal.fit_vaal`; torch is imported at the first query.

    Parameters
    ----------
    latent_dim : int, default=32
        Dimension of the VAE's latent space (the paper's 32 on CIFAR-10).
    hidden_units : int or tuple of int, default=(128,)
        Hidden widths of the VAE's encoder (its decoder mirrors them); the discriminator has
        two hidden layers as wide as the last.
    beta : float, default=1.0
        Weight of the KL term of the beta-VAE loss.
    adversary_weight : float, default=1.0
        The paper's lambda_2: weight of the adversarial term in the VAE's loss.
    max_epochs : int, default=30
        Passes over the pool per query; each step also takes a batch of labelled rows.
    batch_size : int, default=64
        Rows per batch, labelled and unlabelled each.
    lr : float, default=5e-4
        Adam's step size for both networks (the paper's).
    architecture : {"mlp", "conv"}, default="mlp"
        ``"mlp"``: fully connected networks on flat rows of any width. ``"conv"``: a
        convolutional VAE for 1x28x28 images (rows of 784 features, e.g. MNIST), with the
        fully connected discriminator; ``hidden_units`` then sizes only the discriminator.
    device : str, default="auto"
        Where to train: ``"auto"`` is CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds the networks, their training and the tie-breaks.

    References
    ----------
    S. Sinha, S. Ebrahimi and T. Darrell, "Variational Adversarial Active Learning",
    ICCV 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_digits
    >>> from skal import ActiveLearner
    >>> from skal.strategies import VAAL
    >>> X, y = load_digits(return_X_y=True)
    >>> y_partial = np.where(np.arange(len(y)) < 50, y, -1)
    >>> learner = ActiveLearner(query_strategy=VAAL(max_epochs=2, random_state=0))
    >>> learner.fit(X[:300], y_partial[:300]).query(X[50:300], batch_size=5).shape
    (5,)
    """

    _parameter_constraints = {
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "hidden_units": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "beta": [Interval(numbers.Real, 0, None, closed="left")],
        "adversary_weight": [Interval(numbers.Real, 0, None, closed="left")],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "device": "no_validation",
        "architecture": [StrOptions({"mlp", "conv"})],
        "random_state": ["random_state"],
    }
    _target_kinds = frozenset(TARGET_KINDS)
    # The VAE trains on dense rows.
    _needs_dense_embedding = True

    def __init__(self, latent_dim=32, hidden_units=(128,), beta=1.0, adversary_weight=1.0,
                 max_epochs=30, batch_size=64, lr=5e-4, device="auto", architecture="mlp",
                 random_state=None):
        self.latent_dim = latent_dim
        self.hidden_units = hidden_units
        self.beta = beta
        self.adversary_weight = adversary_weight
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.device = device
        self.architecture = architecture
        self.random_state = random_state

    def _select(self, learner, X_pool, batch_size, random_state):
        X_labeled = _rows(labeled_rows(learner, type(self).__name__), "X_labeled_")
        X_pool = _rows(X_pool, "X_pool")
        if X_labeled.shape[1] != X_pool.shape[1]:
            raise ValueError(
                f"X_pool has {X_pool.shape[1]} features (flattened) but the learner's "
                f"labelled rows have {X_labeled.shape[1]}."
            )
        proba = self.labeled_probability(X_labeled, X_pool, random_state)
        scores = 1.0 - proba
        chosen = top_k(scores, batch_size, random_state)
        return chosen, scores[chosen]

    def labeled_probability(self, X_labeled, X_pool, random_state=None):
        """Train VAAL's networks on the two sets; the discriminator's P(labelled) of the pool.

        Parameters
        ----------
        X_labeled : ndarray of shape (n_labeled, n_features)
        X_pool : ndarray of shape (n_pool, n_features)
        random_state : int, RandomState instance or None, default=None
            Seeds the training; ``None`` uses the strategy's ``random_state`` as given.

        Returns
        -------
        proba : ndarray of shape (n_pool,)
        """
        from sklearn.utils import check_random_state

        from skal.nets._vaal import fit_vaal

        rng = check_random_state(self.random_state if random_state is None else random_state)
        X_labeled = _rows(X_labeled, "X_labeled")
        X_pool = _rows(X_pool, "X_pool")
        if self.architecture == "conv" and X_pool.shape[1] != 784:
            raise ValueError(
                f"architecture='conv' takes 1x28x28 images (784 features per row), got "
                f"{X_pool.shape[1]}; use architecture='mlp' for other rows."
            )
        model = fit_vaal(
            X_labeled, X_pool, latent_dim=self.latent_dim, hidden_units=self.hidden_units,
            beta=self.beta, adversary_weight=self.adversary_weight,
            max_epochs=self.max_epochs, batch_size=self.batch_size, lr=self.lr,
            device=self.device, architecture=self.architecture,
            seed=int(rng.randint(_MAX_SEED)),
        )
        return model.labeled_probability(X_pool)


def labeled_rows(learner, strategy_name):
    """The learner's labelled rows, or the error that says why there are none."""
    X_labeled = getattr(learner, "X_labeled_", None)
    if X_labeled is not None and _num_samples(X_labeled) > 0:
        return X_labeled
    if learner is None or X_labeled is not None or not _is_fitted(learner):
        raise NotFittedError(
            f"{strategy_name} needs labelled rows to tell the pool from, but the learner has "
            "none yet (a cold start). Use a strategy that works without labels first "
            "(RandomSampling, TypiClust, ProbCover, CoreSet), e.g. as initial_strategy."
        )
    raise TypeError(
        f"{strategy_name} needs the learner's labelled rows (X_labeled_), but "
        f"{type(learner).__name__} has none. Use a skal learner (ActiveLearner, "
        "ActiveRegressor, CommitteeLearner), which keeps them."
    )


def _rows(X, name):
    if sp.issparse(X):
        raise TypeError(
            f"{name} is a sparse matrix; VAAL trains a VAE on dense rows. Densify it "
            "(X.toarray()) or reduce it first (TruncatedSVD)."
        )
    X = check_array(X, dtype=np.float32, allow_nd=True, input_name=name)
    return np.ascontiguousarray(X.reshape(X.shape[0], -1))
