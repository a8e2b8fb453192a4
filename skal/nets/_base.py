"""What skal's skorch networks share: scikit-learn manners on top of skorch (parameters, seeds,
devices, input checks), the module built from the data, batched inference, consistent
MC-dropout sampling and penultimate-layer embeddings."""

import copy
import inspect
import numbers
from contextlib import contextmanager, nullcontext
from types import MappingProxyType

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils._tags import TransformerTags
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch.net import NeuralNet

from skal.nets._divergence import DivergenceCheck, check_finite_output
from skal.nets._mc_dropout import (
    ConsistentMCDropout,
    fill_samples,
    first_output,
    module_device,
    rows_tensor,
)

_MAX_SEED = np.iinfo(np.int32).max
# skorch sets these in __init__; scikit-learn wants nothing but parameters set there, so they
# live on the class until fit or initialize sets them on the instance.
_SKORCH_INIT_ATTRIBUTES = ("history_", "initialized_", "virtual_params_")


def resolve_device(device):
    """``"auto"`` is CUDA when available, else the CPU; anything else is returned as is."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_positive_int(value, name):
    """``value`` as an int when it is a positive integer, else a ValueError naming ``name``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


class NetMixin:
    """The shared half of :class:`~skal.nets.NetClassifier` and :class:`~skal.nets.NetRegressor`.

    Put it left of a skorch net class. A subclass says what its targets are:
    ``_target_validation`` (``validate_data``'s options for ``y``), ``_prepare_targets(y,
    reset, **options)`` (``y`` as the criterion wants it; with ``reset``, remember what the
    output layer needs) and ``_module_sizes(accepted)`` (the module arguments the data imply).
    """

    history_ = None
    initialized_ = False
    virtual_params_ = MappingProxyType({})
    # The most sharing MC-dropout layout to try (see _mc_dropout); "prefix" or "replicate"
    # (the whole network once per pass) for benchmarks and tests.
    _mc_expansion = "linear"
    # False makes training and validation batches go through torch's DataLoader row by row.
    _fast_batches = True
    _target_validation = MappingProxyType({})

    def __init__(self, module, *, n_samples, inference_batch_size, random_state, **skorch_params):
        # skorch guards torch-module attributes once it thinks __init__ is over, which it
        # judges by initialized_ existing; here that is a class attribute, so say so.
        object.__setattr__(self, "_constructing", True)
        super().__init__(module, **skorch_params)
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
    def __sklearn_is_fitted__(self):
        return "_input_shape" in vars(self) and hasattr(self, "module_")

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
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
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

    def _fit_prepare(self, X, y, reset, **target_options):
        """Validated float32 ``X`` and the targets as the criterion wants them."""
        X, y = validate_data(
            self,
            X,
            y,
            dtype=np.float32,
            allow_nd=True,
            reset=reset,
            ensure_min_samples=1,
            **self._target_validation,
        )
        X = self._writable(X)
        y = self._prepare_targets(y, reset, **target_options)
        if reset:
            self._input_shape = X.shape[1:]
        elif X.shape[1:] != self._input_shape:
            raise ValueError(
                f"X has rows of shape {X.shape[1:]}, but the network was built for rows of "
                f"shape {self._input_shape}."
            )
        return X, y

    # ------------------------------------------------------------------ training
    def _train(self, X, y, initialize, **fit_params):
        """Seeded training on prepared data, building the network first when ``initialize``."""
        with self._torch_seeded(self._seed(0)), self._device_resolved():
            if initialize:
                self.initialize()
            NeuralNet.partial_fit(self, X, y, **fit_params)
        return self

    def get_iterator(self, dataset, training=False):
        """skorch's batches, cut from whole tensors when the data are arrays in memory.

        A plain ``DataLoader`` over skorch's ``Dataset`` fetches every row in Python and
        stacks the rows again; on the small labelled sets of active learning that is much of
        the cost of an epoch. The batches, their order and the draws from torch's random
        generator are the same either way, so a seed trains the same weights.
        """
        loader = super().get_iterator(dataset, training=training)
        tensors = _in_memory_tensors(loader) if self._fast_batches else None
        return loader if tensors is None else _TensorBatches(loader, *tensors)

    def initialize(self):
        with self._device_resolved():
            return super().initialize()

    def initialize_module(self):
        """Build ``module_``, filling in the sizes (``n_features`` etc.) the data imply."""
        kwargs = self.get_params_for("module")
        module = self.module
        if isinstance(module, torch.nn.Module):
            # Train a copy: the module the user passed is a parameter and stays untouched.
            self.module_ = (
                self.initialized_instance(module, kwargs) if kwargs else copy.deepcopy(module)
            )
            return self
        try:
            accepted = inspect.signature(module).parameters
        except (TypeError, ValueError):
            accepted = {}
        for name, value in self._module_sizes(accepted).items():
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
        step = check_positive_int(self.inference_batch_size, "inference_batch_size")
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
        device = module_device(self.module_)
        parts = []
        for rows in self._row_slices(X.shape[0]):
            out = func(rows_tensor(X, rows, device))
            parts.append(out.to(torch.float32).cpu().numpy())
        return check_finite_output(np.concatenate(parts, axis=0), self.module_, what)

    def _predict_outputs(self, X, what):
        """The deterministic network's outputs (after the predict nonlinearity), float32."""
        nonlin = self._get_predict_nonlinearity()
        with self._evaluating():
            return self._map_batches(X, lambda xb: nonlin(first_output(self.module_(xb))), what)

    def _sample_outputs(self, X, n_samples, n_outputs, what):
        """Consistent MC-dropout samples of the outputs, (n_samples, n_rows, n_outputs) float32."""
        n_samples = check_positive_int(
            self.n_samples if n_samples is None else n_samples, "n_samples"
        )
        nonlin = self._get_predict_nonlinearity()
        batch_rows = check_positive_int(self.inference_batch_size, "inference_batch_size")
        module = self.module_
        samples = np.empty((n_samples, X.shape[0], n_outputs), dtype=np.float32)
        with torch.inference_mode(), ConsistentMCDropout(
            module, n_samples, self._seed(1)
        ) as mc:
            fill_samples(samples, module, mc, X, batch_rows, nonlin, self._mc_expansion)
        return check_finite_output(samples, module, what, row_axis=1)

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


def _in_memory_tensors(loader):
    """``(X, y)`` as whole tensors when ``loader`` only collates rows of in-memory arrays.

    None for anything else (workers, a custom collate function or sampler-less loader, a
    Dataset subclass, dicts, data frames, sparse or read-only arrays), which keeps torch's
    DataLoader.
    """
    from skorch.dataset import Dataset

    if (
        type(loader) is not torch.utils.data.DataLoader
        or type(loader.dataset) is not Dataset
        or loader.num_workers != 0
        or loader.pin_memory
        or loader.batch_sampler is None
        or loader.collate_fn is not torch.utils.data.default_collate
    ):
        return None
    tensors = []
    for data in (loader.dataset.X, loader.dataset.y):
        if data is None and tensors:
            tensors.append(None)
        elif isinstance(data, torch.Tensor):
            tensors.append(data)
        elif isinstance(data, np.ndarray) and data.dtype != object and data.flags.writeable:
            tensors.append(torch.from_numpy(data))
        else:
            return None
    return tensors


class _TensorBatches:
    """A DataLoader's batches cut from whole tensors: same batches, order and random draws.

    Iterating a DataLoader draws a base seed from torch's generator before its sampler runs;
    this does the same, then takes each batch of indices the sampler gives by indexing.
    """

    def __init__(self, loader, X, y):
        self.loader = loader
        self.dataset = loader.dataset
        self.X, self.y = X, y

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        for indices in self.loader.batch_sampler:
            index = torch.as_tensor(indices, dtype=torch.int64)
            # skorch's Dataset stands in torch.Tensor([0]) for every row of a missing y.
            y = torch.zeros(len(indices), 1) if self.y is None else self.y[index]
            yield self.X[index], y


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
