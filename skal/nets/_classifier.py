"""NetClassifier: a skorch NeuralNetClassifier that is a well-behaved scikit-learn classifier
and offers what active learning asks of a network (MC-dropout samples, embeddings)."""

import numpy as np
import torch
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from skorch import NeuralNetClassifier

from skal.nets._base import NetMixin
from skal.nets._modules import MLP


class NetClassifier(NetMixin, NeuralNetClassifier):
    """A skorch neural-network classifier for active learning, with scikit-learn manners.

    It is a :class:`skorch.NeuralNetClassifier` (callbacks, ``module__*``/``optimizer__*``
    parameters, ``save_params``, ``warm_start`` all work as in skorch) that also

    - label-encodes ``y``, so any labels work and ``classes_`` holds them;
    - validates ``X`` and casts it to float32, sets ``n_features_in_``;
    - builds the module from a class, filling in its ``n_features`` and ``n_classes``
      arguments from the data when it has them (a module instance is deep-copied, never
      trained in place);
    - seeds torch from ``random_state`` inside :func:`torch.random.fork_rng`, so the global
      random state is untouched and a refit with the same seed gives the same network;
    - defaults to ``train_split=None`` (tiny labelled pools have no room for a validation
      split), ``verbose=0`` and ``device="auto"``;
    - samples the posterior with consistent MC dropout (:meth:`predict_proba_samples`) and
      embeds rows with the penultimate layer (:meth:`transform`).

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=MLP
        The network; it returns logits with the default criterion. Classes get
        ``n_features``/``n_classes`` from the data when their constructor has those
        arguments and they are not given as ``module__n_features``/``module__n_classes``.
        Dropout layers must be ``torch.nn.Dropout`` or ``Dropout1d/2d/3d`` modules (not
        ``torch.nn.functional.dropout``) for :meth:`predict_proba_samples` to sample.
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        With ``CrossEntropyLoss`` the outputs go through a softmax for probabilities; with
        skorch's usual ``NLLLoss`` the module must output probabilities.
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
        Keep the weights between calls to ``fit`` (set by ``ActiveLearner(update="warm_start")``).
        A fit whose ``y`` has a class the network has no output for starts afresh, since the
        output layer cannot grow; pass ``classes`` to size it for every class from the start.
    verbose : int, default=0
    device : str or torch.device, default="auto"
        Where the module lives: ``"auto"`` is CUDA when available, else the CPU.
    classes : array-like or None, default=None
        All classes, when they are known before every class has a label: the output layer
        then has a unit for each of them.
    n_samples : int, default=20
        Posterior samples (stochastic passes) :meth:`predict_proba_samples` draws by default.
    inference_batch_size : int, default=1024
        Rows per forward pass when predicting, sampling or embedding. Bounds memory: MC
        sampling never holds more than this many rows (pool rows times passes) at once.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation and batch shuffling in ``fit``, and the dropout masks of
        :meth:`predict_proba_samples` (an int gives the same masks on every call).
    **kwargs
        Any other skorch parameter, e.g. ``module__hidden_units=(64,)``,
        ``optimizer__weight_decay=1e-4``, ``iterator_train__num_workers=2``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels.
    n_features_in_ : int
        Columns of ``X`` seen in ``fit``.
    module_ : torch.nn.Module
        The trained network (skorch attribute, as are ``optimizer_``, ``history_`` etc.).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal.nets import NetClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> net = NetClassifier(max_epochs=5, module__hidden_units=(16,), random_state=0).fit(X, y)
    >>> net.predict_proba_samples(X[:4], n_samples=8).shape
    (8, 4, 3)
    >>> net.transform(X[:4]).shape
    (4, 16)
    """

    def __init__(
        self,
        module=MLP,
        *,
        criterion=torch.nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=20,
        batch_size=64,
        train_split=None,
        callbacks=None,
        warm_start=False,
        verbose=0,
        device="auto",
        classes=None,
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
            classes=classes,
            n_samples=n_samples,
            inference_batch_size=inference_batch_size,
            random_state=random_state,
            **kwargs,
        )

    # ------------------------------------------------------------------ fitted state
    @property
    def classes_(self):
        classes = vars(self).get("_classes")
        if classes is None:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' before fit.")
        return classes

    # ------------------------------------------------------------------ input checks
    def _prepare_targets(self, y, reset, classes=None):
        check_classification_targets(y)
        return self._encode_labels(y, classes, reset)

    def _encode_labels(self, y, classes, reset):
        if reset:
            classes = np.unique(y) if classes is None else np.unique(np.asarray(classes))
        else:
            classes = self.classes_
        codes = np.searchsorted(classes, y)
        codes = np.minimum(codes, classes.size - 1)
        unknown = classes[codes] != y
        if unknown.any():
            where = "the classes seen at the first fit" if not reset else "`classes`"
            raise ValueError(
                f"y contains labels {np.unique(y[unknown]).tolist()} that are not among {where}: "
                f"{classes.tolist()}."
            )
        if reset:
            self._classes = classes
        return codes.astype(np.int64)

    def _module_sizes(self, accepted):
        if "_classes" not in vars(self):
            return {}
        return {"n_features": int(np.prod(self._input_shape)), "n_classes": int(self._classes.size)}

    # ------------------------------------------------------------------ training
    def fit(self, X, y, **fit_params):
        """Build the network (unless ``warm_start`` and fitted) and train it on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, channels, height, width)
        y : array-like of shape (n_samples,)
        **fit_params : dict
            Passed to the module's ``forward`` (skorch convention).

        Returns
        -------
        self : object

        Raises
        ------
        TrainingDivergedError
            When the training loss or the weights become non-finite (NaN or infinite); the
            message names the epoch. Scale the inputs or lower ``lr``.
        """
        warm = bool(self.warm_start) and self.__sklearn_is_fitted__()
        if warm and self.classes is None and np.setdiff1d(y, self.classes_).size:
            # The output layer cannot grow: a new class means a new network.
            warm = False
        X, y_codes = self._fit_prepare(X, y, reset=not warm, classes=self.classes)
        return self._train(X, y_codes, initialize=not warm, _routing_method="fit", **fit_params)

    def partial_fit(self, X, y, classes=None, **fit_params):
        """Train for ``max_epochs`` more epochs on ``(X, y)``, building the network first if needed.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like, default=None
            All classes, on the first call only (else those of ``y`` or ``self.classes``).
        **fit_params : dict

        Returns
        -------
        self : object
        """
        first = not self.__sklearn_is_fitted__()
        if classes is None:
            classes = self.classes
        X, y_codes = self._fit_prepare(X, y, reset=first, classes=classes)
        return self._train(X, y_codes, initialize=first, **fit_params)

    def predict_proba(self, X):
        """Class probabilities of the deterministic network (dropout off).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes), float32

        Raises
        ------
        ValueError
            When the network outputs non-finite values (its weights are non-finite, or the
            inputs overflow float32): never NaN probabilities.
        """
        X = self._check_X(X)
        if isinstance(X, torch.utils.data.Dataset):
            return super().predict_proba(X)
        return self._predict_outputs(X, "probabilities")

    def predict(self, X):
        """Most probable class of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def predict_proba_samples(self, X, n_samples=None):
        """Posterior samples of the class probabilities by consistent MC dropout.

        Pass ``k`` runs the network with dropout mask ``k`` on every row, so all rows share the
        same ``n_samples`` sampled networks (as BatchBALD needs); batch normalisation stays in
        evaluation mode, no autograd graph is built and the rows keep their order. Rows are
        processed ``inference_batch_size`` at a time (a small pool is repeated for several
        passes in one forward pass), so memory does not grow with ``n_samples`` times the
        pool, and the result does not depend on the batch size. Work the passes share runs
        once per row: the layers before the first dropout layer and, when that layer drops
        whole channels, those up to the next convolution, whose K outputs are mixed from its
        per-channel contributions (where the module's graph, traced by ``torch.fx``, shows
        only ReLU and pooling in between). A probe on three rows checks this against running
        the network once per pass, and falls back to that when they differ. Masks are drawn from
        ``random_state``: an int gives the same masks on every call. A dropout layer used
        twice in ``forward`` draws its masks per use. Every dropout layer's input must hold
        the rows on dimension 0 (``batch_first=True`` for recurrent and transformer layers).

        Parameters
        ----------
        X : array-like of shape (n_pool, n_features)
        n_samples : int, default=None
            Number of passes; ``None`` uses the ``n_samples`` parameter.

        Returns
        -------
        samples : ndarray of shape (n_samples, n_pool, n_classes), float32
            Class probabilities of each pass, on the CPU.

        Raises
        ------
        ValueError
            When the network outputs non-finite values, as :meth:`predict_proba`, or when a
            dropout layer's input does not hold the rows on dimension 0.
        """
        X = self._check_X(X)
        return self._sample_outputs(X, n_samples, self.classes_.size, "probability samples")
