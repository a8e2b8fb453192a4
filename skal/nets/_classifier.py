"""NetClassifier: a skorch NeuralNetClassifier that is a well-behaved scikit-learn classifier
and offers what active learning asks of a network (MC-dropout samples, embeddings)."""

import copy
import inspect
import numbers
from contextlib import contextmanager, nullcontext
from types import MappingProxyType

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._tags import TransformerTags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNetClassifier
from skorch.net import NeuralNet

from skal.nets._divergence import DivergenceCheck, check_finite_output
from skal.nets._mc_dropout import ConsistentMCDropout
from skal.nets._modules import MLP

_MAX_SEED = np.iinfo(np.int32).max
# skorch sets these in __init__; scikit-learn wants nothing but parameters set there, so they
# live on the class until fit or initialize sets them on the instance.
_SKORCH_INIT_ATTRIBUTES = ("history_", "initialized_", "virtual_params_")


def resolve_device(device):
    """``"auto"`` is CUDA when available, else the CPU; anything else is returned as is."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _module_device(module):
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def _first_output(output):
    # skorch's convention: a module may return a tuple whose first element is the prediction.
    return output[0] if isinstance(output, tuple | list) else output


def _check_positive_int(value, name):
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


class NetClassifier(NeuralNetClassifier):
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

    history_ = None
    initialized_ = False
    virtual_params_ = MappingProxyType({})
    # False makes predict_proba_samples run the whole network once per pass (benchmarks, tests).
    _mc_shared_prefix = True

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
        # skorch guards torch-module attributes once it thinks __init__ is over, which it
        # judges by initialized_ existing; here that is a class attribute, so say so.
        object.__setattr__(self, "_constructing", True)
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
            **kwargs,
        )
        self.n_samples = n_samples
        self.inference_batch_size = inference_batch_size
        self.random_state = random_state
        for name in _SKORCH_INIT_ATTRIBUTES + ("_constructing",):
            vars(self).pop(name, None)

    def __setattr__(self, name, value):
        if "_constructing" in vars(self):
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    # ------------------------------------------------------------------ fitted state
    @property
    def classes_(self):
        classes = vars(self).get("_classes")
        if classes is None:
            raise AttributeError(f"{type(self).__name__} has no attribute 'classes_' before fit.")
        return classes

    def __sklearn_is_fitted__(self):
        return "_classes" in vars(self) and hasattr(self, "module_")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # transform() gives network features, computed in float32 whatever the input dtype.
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        tags.input_tags.allow_nan = False
        return tags

    def _get_param_names(self):
        # skorch lists every instance attribute not ending in "_" as a parameter, which
        # includes its private bookkeeping; parameters are never private.
        return [name for name in super()._get_param_names() if not name.startswith("_")]

    def set_params(self, **params):
        """Set parameters, as skorch does (``module__*`` etc. rebuild what they affect).

        Returns
        -------
        self : object
        """
        if "callbacks" in params and not self.initialized_:
            # skorch builds the callbacks as soon as the list is set; before fit, storing it is
            # enough, and fit reports a bad value.
            self.callbacks = params.pop("callbacks")
        return super().set_params(**params)

    def get_default_callbacks(self):
        # After skorch's loss and scoring callbacks, so the epoch's record is complete.
        return [*super().get_default_callbacks(), ("divergence_check", DivergenceCheck())]

    def fit_transform(self, X, y, **fit_params):
        """Fit, then return the penultimate-layer embeddings of ``X`` (see :meth:`transform`).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        **fit_params : dict

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components), float32
        """
        return self.fit(X, y, **fit_params).transform(X)

    # ------------------------------------------------------------------ devices and seeds
    @contextmanager
    def _device_resolved(self):
        """skorch reads ``self.device`` directly; show it the resolved device meanwhile."""
        requested = self.device
        self.device = resolve_device(requested)
        try:
            yield
        finally:
            self.device = requested

    def _seed(self, stream):
        """An int seed for ``stream`` (0: training, 1: MC masks) from ``random_state``."""
        base = int(check_random_state(self.random_state).randint(_MAX_SEED))
        return int(np.random.SeedSequence([base, stream]).generate_state(1)[0])

    @contextmanager
    def _torch_seeded(self, seed):
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    # ------------------------------------------------------------------ input checks
    def _check_fit_data(self, X, y, reset):
        X, y = validate_data(
            self, X, y, dtype=np.float32, allow_nd=True, reset=reset, ensure_min_samples=1
        )
        check_classification_targets(y)
        return self._writable(X), y

    def _check_X(self, X):
        check_is_fitted(self)
        if isinstance(X, torch.utils.data.Dataset):
            return X  # skorch's own scoring of a validation split passes its Dataset
        X = validate_data(self, X, dtype=np.float32, allow_nd=True, reset=False)
        if X.shape[1:] != self._input_shape:
            raise ValueError(
                f"X has rows of shape {X.shape[1:]}, but {type(self).__name__} was fitted "
                f"on rows of shape {self._input_shape}."
            )
        return X

    @staticmethod
    def _writable(X):
        # torch warns on read-only arrays (e.g. memory maps); a copy is what it would need.
        return np.require(X, requirements=["C", "W"])

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

    def _fit_prepare(self, X, y, reset, classes):
        X, y = self._check_fit_data(X, y, reset=reset)
        y_codes = self._encode_labels(y, classes, reset)
        if reset:
            self._input_shape = X.shape[1:]
        elif X.shape[1:] != self._input_shape:
            raise ValueError(
                f"X has rows of shape {X.shape[1:]}, but the network was built for rows of "
                f"shape {self._input_shape}."
            )
        return X, y_codes

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
        with self._torch_seeded(self._seed(0)), self._device_resolved():
            if not warm:
                self.initialize()
            NeuralNet.partial_fit(self, X, y_codes, _routing_method="fit", **fit_params)
        return self

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
        with self._torch_seeded(self._seed(0)), self._device_resolved():
            if first:
                self.initialize()
            NeuralNet.partial_fit(self, X, y_codes, **fit_params)
        return self

    def initialize(self):
        with self._device_resolved():
            return super().initialize()

    def initialize_module(self):
        """Build ``module_``, filling in ``n_features``/``n_classes`` the data imply."""
        kwargs = self.get_params_for("module")
        module = self.module
        if isinstance(module, torch.nn.Module):
            # Train a copy: the module the user passed is a parameter and stays untouched.
            self.module_ = (
                self.initialized_instance(module, kwargs) if kwargs else copy.deepcopy(module)
            )
            return self
        if "_classes" in vars(self):
            inferred = {
                "n_features": int(np.prod(self._input_shape)),
                "n_classes": int(self._classes.size),
            }
            try:
                accepted = inspect.signature(module).parameters
            except (TypeError, ValueError):
                accepted = {}
            for name, value in inferred.items():
                if name in accepted and kwargs.get(name) is None:
                    kwargs[name] = value
        self.module_ = self.initialized_instance(module, kwargs)
        return self

    def _initialize_module(self, reason=None):
        with self._device_resolved():
            return super()._initialize_module(reason=reason)

    def _initialize_criterion(self, reason=None):
        with self._device_resolved():
            return super()._initialize_criterion(reason=reason)

    def infer(self, x, **fit_params):
        with self._device_resolved():
            return super().infer(x, **fit_params)

    def get_loss(self, y_pred, y_true, *args, **kwargs):
        with self._device_resolved():
            return super().get_loss(y_pred, y_true, *args, **kwargs)

    def load_params(self, *args, **kwargs):
        with self._device_resolved():
            return super().load_params(*args, **kwargs)

    def __setstate__(self, state):
        requested = state.get("device")
        auto = isinstance(requested, str) and requested == "auto"
        if auto:
            state["device"] = resolve_device(requested)
        super().__setstate__(state)
        if auto:
            self.device = requested

    # ------------------------------------------------------------------ inference
    def _row_slices(self, n_rows):
        step = _check_positive_int(self.inference_batch_size, "inference_batch_size")
        return [slice(i, min(i + step, n_rows)) for i in range(0, n_rows, step)]

    @contextmanager
    def _evaluating(self):
        """Evaluation mode and no autograd; the modules' training flags are restored after."""
        modes = [(m, m.training) for m in self.module_.modules()]
        self.module_.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            for m, training in modes:
                m.training = training

    def _map_batches(self, X, func, what):
        device = _module_device(self.module_)
        parts = []
        for rows in self._row_slices(X.shape[0]):
            out = func(torch.from_numpy(X[rows]).to(device))
            parts.append(out.to(torch.float32).cpu().numpy())
        return check_finite_output(np.concatenate(parts, axis=0), self.module_, what)

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
        nonlin = self._get_predict_nonlinearity()
        with self._evaluating():
            return self._map_batches(
                X, lambda xb: nonlin(_first_output(self.module_(xb))), "probabilities"
            )

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
        pool, and the result does not depend on the batch size. Masks are drawn from
        ``random_state``: an int gives the same masks on every call.

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
            When the network outputs non-finite values, as :meth:`predict_proba`.
        """
        X = self._check_X(X)
        n_samples = _check_positive_int(
            self.n_samples if n_samples is None else n_samples, "n_samples"
        )
        nonlin = self._get_predict_nonlinearity()
        batch_rows = _check_positive_int(self.inference_batch_size, "inference_batch_size")
        module = self.module_
        samples = np.empty((n_samples, X.shape[0], self.classes_.size), dtype=np.float32)
        with torch.inference_mode(), ConsistentMCDropout(
            module, n_samples, self._seed(1)
        ) as mc:
            shared = (
                self._mc_shared_prefix
                and n_samples > 1
                and mc.has_dropout
                and _shared_prefix_agrees(module, mc, X)
            )
            if shared:
                try:
                    _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, shared=True)
                except _PrefixMismatch:
                    shared = False
            if not shared:
                _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, shared=False)
        return check_finite_output(samples, module, "probability samples", row_axis=1)

    def transform(self, X):
        """Penultimate-layer embeddings of the deterministic network (dropout off).

        The module's ``embed(x)`` method when it has one (as :class:`~skal.nets.MLP` and
        :class:`~skal.nets.MNISTConvNet` do), else the input of its last ``torch.nn.Linear``
        layer.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components), float32
        """
        X = self._check_X(X)
        embed = getattr(self.module_, "embed", None)
        capture = nullcontext()
        if not callable(embed):
            embed, capture = _last_linear_input(self.module_)
        with self._evaluating(), capture:
            return self._map_batches(X, lambda xb: embed(xb).flatten(1), "embeddings")


class _PrefixMismatch(Exception):
    """Computing the prefix once did not give one output row per pool row and pass."""


# Rows that check that a module allows the shared prefix, and passes they check it over.
_PROBE_ROWS = 3
_PROBE_PASSES = 3


def _mc_forward(module, mc, xb, start, stop, shared):
    """The module's output for passes ``start..stop-1`` of the rows ``xb``, pass-major."""
    n_rows, n_passes = xb.shape[0], stop - start
    mc.use_passes(start, stop, n_rows, expand=shared)
    if shared or n_passes == 1:
        inputs = xb
    else:
        inputs = xb.repeat((n_passes,) + (1,) * (xb.dim() - 1))
    try:
        output = _first_output(module(inputs))
    except RuntimeError as exc:
        # Expanding at the dropout layer broke a shape somewhere after it.
        if not shared or isinstance(exc, torch.cuda.OutOfMemoryError):
            raise
        raise _PrefixMismatch from exc
    if output.shape[0] != n_passes * n_rows:
        if shared:
            raise _PrefixMismatch
        raise ValueError(
            f"The module returned {output.shape[0]} rows for {n_passes * n_rows} input rows: "
            "MC dropout sampling needs one output row per input row."
        )
    return output


def _shared_prefix_agrees(module, mc, X):
    """Whether a few rows' outputs are the same with the prefix computed once as per pass."""
    xb = torch.from_numpy(X[:_PROBE_ROWS]).to(_module_device(module))
    stop = min(mc.n_samples, _PROBE_PASSES)
    try:
        shared = _mc_forward(module, mc, xb, 0, stop, shared=True)
    except _PrefixMismatch:
        return False
    full = _mc_forward(module, mc, xb, 0, stop, shared=False)
    # Outputs (logits), not probabilities: a saturated softmax would hide a difference.
    return bool(torch.allclose(shared, full, rtol=1e-4, atol=1e-5))


def _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, shared):
    """Fill ``samples`` (passes, rows, classes), holding at most ``batch_rows`` rows at once.

    A chunk of rows runs several passes in one forward pass when it is smaller than
    ``batch_rows``. With the shared prefix, chunks have ``batch_rows // n_passes`` rows, so
    that after the expansion one forward pass holds the chunk's rows for all passes (at most
    ``batch_rows`` rows) and the prefix runs once per row.
    """
    n_passes = samples.shape[0]
    device = _module_device(module)
    chunk = max(1, batch_rows // n_passes) if shared else batch_rows
    for first in range(0, X.shape[0], chunk):
        rows = slice(first, min(first + chunk, X.shape[0]))
        xb = torch.from_numpy(X[rows]).to(device)
        passes_per_forward = max(1, batch_rows // xb.shape[0])
        for start in range(0, n_passes, passes_per_forward):
            stop = min(n_passes, start + passes_per_forward)
            output = _mc_forward(module, mc, xb, start, stop, shared)
            proba = nonlin(output).reshape(stop - start, xb.shape[0], -1)
            samples[start:stop, rows] = proba.to(torch.float32).cpu().numpy()


def _last_linear_input(module):
    linear = [m for m in module.modules() if isinstance(m, torch.nn.Linear)]
    if not linear:
        raise TypeError(
            f"{type(module).__name__} has neither an embed(x) method nor a torch.nn.Linear "
            "layer, so transform() cannot find its penultimate layer; add an embed method."
        )
    captured = {}

    def embed(xb):
        module(xb)
        return captured.pop("x")

    def hook(_layer, inputs):
        captured["x"] = inputs[0]

    @contextmanager
    def capture():
        handle = linear[-1].register_forward_pre_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    return embed, capture()
