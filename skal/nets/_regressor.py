"""NetRegressor: a skorch NeuralNetRegressor that is a well-behaved scikit-learn regressor and
offers what active learning for regression asks of a network (MC-dropout spread, samples,
embeddings)."""

from types import MappingProxyType

import numpy as np
import torch
from skorch import NeuralNetRegressor
from skorch.net import NeuralNet

from skal.nets._base import NetMixin
from skal.nets._mc_dropout import dropout_layers
from skal.nets._modules import MLP


def _n_outputs_of(y):
    shape = np.shape(y)
    return shape[1] if len(shape) == 2 else 1


class NetRegressor(NetMixin, NeuralNetRegressor):
    """A skorch neural-network regressor for active learning, with scikit-learn manners.

    The regression counterpart of :class:`~skal.nets.NetClassifier`: a
    :class:`skorch.NeuralNetRegressor` (callbacks, ``module__*``/``optimizer__*`` parameters,
    ``save_params``, ``warm_start`` all work as in skorch) that also

    - validates ``X`` (cast to float32, ``n_features_in_`` set) and ``y`` (finite numbers,
      one target per row or ``(n_samples, n_outputs)``; trained on as float32);
    - builds the module from a class, filling in its ``n_features`` and its number of outputs
      (an ``n_outputs`` argument, else ``n_classes`` as :class:`~skal.nets.MLP` calls it)
      from the data when it has them (a module instance is deep-copied, never trained in
      place);
    - seeds torch from ``random_state`` inside :func:`torch.random.fork_rng`, so the global
      random state is untouched and a refit with the same seed gives the same network;
    - defaults to ``train_split=None``, ``verbose=0`` and ``device="auto"``;
    - gives a predictive standard deviation, ``predict(X, return_std=True)``, and posterior
      samples, :meth:`predict_samples`, by consistent MC dropout, and embeds rows with the
      penultimate layer (:meth:`transform`).

    The network learns faster, and its standard deviation reads more easily, on standardised
    targets: scale ``y`` (e.g. with :class:`~sklearn.preprocessing.StandardScaler`) before
    fitting when its values are far from unit scale.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=MLP
        The network; it returns one value per output. Classes get ``n_features`` and
        ``n_outputs`` (or ``n_classes``) from the data when their constructor has those
        arguments and they are not given as ``module__*``. The MC-dropout standard deviation
        and samples need dropout layers (``torch.nn.Dropout`` or ``Dropout1d/2d/3d`` modules).
    criterion : torch loss class, default=torch.nn.MSELoss
    optimizer : torch optimizer class, default=torch.optim.Adam
    lr : float, default=1e-2
        Adam's step size; larger than Adam's usual 1e-3 because active learning trains on
        small labelled sets for few epochs.
    max_epochs : int, default=20
        Epochs per ``fit``.
    batch_size : int, default=64
        Rows per training batch.
    train_split : callable or None, default=None
        skorch's validation split; ``None`` trains on every row.
    callbacks : list or None, default=None
        skorch callbacks, run after the default ones. Among those, ``"divergence_check"``
        (:class:`~skal.nets.DivergenceCheck`) makes ``fit`` raise
        :class:`~skal.nets.TrainingDivergedError` at the first epoch whose training loss or
        weights are not finite; ``callbacks__divergence_check=None`` turns it off.
    warm_start : bool, default=False
        Keep the weights between calls to ``fit`` (set by ``update="warm_start"`` of skal's
        learners). A fit whose ``y`` has another number of outputs starts afresh.
    verbose : int, default=0
    device : str or torch.device, default="auto"
        Where the module lives: ``"auto"`` is CUDA when available, else the CPU.
    n_samples : int, default=20
        Posterior samples (stochastic passes) that :meth:`predict_samples` draws by default
        and that ``predict(X, return_std=True)`` averages over.
    inference_batch_size : int, default=1024
        Rows per forward pass when predicting, sampling or embedding. Bounds memory: MC
        sampling never holds more than this many rows (pool rows times passes) at once.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch shuffling in ``fit``, and the dropout masks of
        the MC samples (an int gives the same masks on every call).
    **kwargs
        Any other skorch parameter, e.g. ``module__hidden_units=(64,)``,
        ``optimizer__weight_decay=1e-4``.

    Attributes
    ----------
    n_outputs_ : int
        Targets per row (1 for a 1-d ``y``).
    n_features_in_ : int
        Columns of ``X`` seen in ``fit``.
    module_ : torch.nn.Module
        The trained network (skorch attribute, as are ``optimizer_``, ``history_`` etc.).

    Examples
    --------
    >>> from sklearn.datasets import make_friedman1
    >>> from skal.nets import NetRegressor
    >>> X, y = make_friedman1(n_samples=100, random_state=0)
    >>> net = NetRegressor(max_epochs=5, module__hidden_units=(16,), random_state=0).fit(X, y)
    >>> mean, std = net.predict(X[:4], return_std=True)
    >>> mean.shape, std.shape
    ((4,), (4,))
    >>> net.predict_samples(X[:4], n_samples=8).shape
    (8, 4)
    """

    _target_validation = MappingProxyType({"multi_output": True, "y_numeric": True})

    def __init__(
        self,
        module=MLP,
        *,
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=20,
        batch_size=64,
        train_split=None,
        callbacks=None,
        warm_start=False,
        verbose=0,
        device="auto",
        n_samples=20,
        inference_batch_size=1024,
        random_state=None,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            callbacks=callbacks,
            warm_start=warm_start,
            verbose=verbose,
            device=device,
            n_samples=n_samples,
            inference_batch_size=inference_batch_size,
            random_state=random_state,
            **kwargs,
        )

    @property
    def predict_proba(self):
        # skorch's NeuralNet has predict_proba; a regressor must not look as if it had one
        # (scikit-learn's checks and skal's strategies read hasattr as a capability).
        raise AttributeError(
            f"{type(self).__name__} is a regressor and has no predict_proba; its uncertainty "
            "is predict(X, return_std=True) or predict_samples(X)."
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    # ------------------------------------------------------------------ targets
    def _prepare_targets(self, y, reset):
        with np.errstate(over="ignore"):
            y = np.asarray(y, dtype=np.float32)
        if not np.isfinite(y).all():
            raise ValueError(
                "y has values too large for float32, the network's arithmetic: scale the "
                "targets (e.g. StandardScaler)."
            )
        columns = y.reshape(y.shape[0], -1)
        if reset:
            self.n_outputs_ = columns.shape[1]
            self._target_ndim = y.ndim
        elif columns.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {columns.shape[1]} outputs, but the network was built for "
                f"{self.n_outputs_}."
            )
        return columns

    def _module_sizes(self, accepted):
        if "n_outputs_" not in vars(self):
            return {}
        outputs = "n_outputs" if "n_outputs" in accepted else "n_classes"
        return {"n_features": int(np.prod(self._input_shape)), outputs: self.n_outputs_}

    def _as_target_shape(self, values):
        """Outputs ``(..., n_rows, n_outputs)`` shaped as ``y`` was at fit."""
        return values[..., 0] if self._target_ndim == 1 else values

    # ------------------------------------------------------------------ training
    def fit(self, X, y, **fit_params):
        """Build the network (unless ``warm_start`` and fitted) and train it on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, channels, height, width)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        **fit_params : dict
            Passed to the module's ``forward`` (skorch convention).

        Returns
        -------
        self : object

        Raises
        ------
        TrainingDivergedError
            When the training loss or the weights become non-finite (NaN or infinite); the
            message names the epoch. Scale the inputs or the targets, or lower ``lr``.
        """
        warm = (
            bool(self.warm_start)
            and self.__sklearn_is_fitted__()
            # The output layer cannot change size: other outputs mean a new network.
            and _n_outputs_of(y) == self.n_outputs_
        )
        X, y = self._fit_prepare(X, y, reset=not warm)
        return self._train(X, y, initialize=not warm, _routing_method="fit", **fit_params)

    def partial_fit(self, X, y, **fit_params):
        """Train for ``max_epochs`` more epochs on ``(X, y)``, building the network first if needed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            The same number of outputs on every call.
        **fit_params : dict

        Returns
        -------
        self : object
        """
        first = not self.__sklearn_is_fitted__()
        X, y = self._fit_prepare(X, y, reset=first)
        return self._train(X, y, initialize=first, **fit_params)

    # ------------------------------------------------------------------ inference
    def predict(self, X, return_std=False):
        """Predictions of the deterministic network, or the MC-dropout mean and spread.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the standard deviation of the predictions over ``n_samples``
            consistent MC-dropout passes (:meth:`predict_samples`); the mean returned is then
            their mean, not the deterministic prediction. Needs dropout layers in the module.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs), float64
            Shaped as ``y`` was at fit.
        y_std : ndarray of the shape of ``y_pred``, float64
            Only with ``return_std=True``.

        Raises
        ------
        ValueError
            With ``return_std=True`` when the module has no dropout layer; when the network
            outputs non-finite values (its weights are non-finite, or the inputs overflow
            float32).
        """
        X = self._check_X(X)
        if isinstance(X, torch.utils.data.Dataset):
            return NeuralNet.predict_proba(self, X)
        if not return_std:
            return self._as_target_shape(self._predict_outputs(X, "predictions")).astype(
                np.float64
            )
        if not dropout_layers(self.module_):
            raise ValueError(
                f"predict(X, return_std=True) needs dropout layers in the module to sample, "
                f"and {type(self.module_).__name__} has none. Add torch.nn.Dropout layers "
                "(skal.nets.MLP has them unless dropout=0), or take the spread of several "
                "networks: a skal.CommitteeRegressor of NetRegressors."
            )
        samples = self._sample_outputs(X, None, self.n_outputs_, "prediction samples")
        samples = self._as_target_shape(samples.astype(np.float64))
        return samples.mean(axis=0), samples.std(axis=0)

    def predict_samples(self, X, n_samples=None):
        """Posterior samples of the predictions by consistent MC dropout.

        Pass ``k`` runs the network with dropout mask ``k`` on every row, so all rows share the
        same ``n_samples`` sampled networks; batch normalisation stays in evaluation mode, no
        autograd graph is built and the rows keep their order. The machinery is
        :meth:`NetClassifier.predict_proba_samples
        <skal.nets.NetClassifier.predict_proba_samples>`'s: memory bounded by
        ``inference_batch_size``, results independent of it, masks drawn from
        ``random_state`` (an int gives the same masks on every call).

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)
        n_samples : int, default=None
            Number of passes; ``None`` uses the ``n_samples`` parameter.

        Returns
        -------
        samples : ndarray of shape (n_samples, n_pool) or (n_samples, n_pool, n_outputs)
            The predictions of each pass, float32 on the CPU; the second shape when ``y``
            was 2-d at fit.

        Raises
        ------
        ValueError
            When the network outputs non-finite values, as :meth:`predict`.
        """
        X = self._check_X(X)
        samples = self._sample_outputs(X, n_samples, self.n_outputs_, "prediction samples")
        return self._as_target_shape(samples)
