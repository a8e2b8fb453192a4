"""Learning loss for active learning (Yoo & Kweon 2019): a loss-prediction module fed by
intermediate layers of a classifier network, trained jointly with it by a pairwise ranking
loss, and a :class:`~skal.nets.NetClassifier` that carries one."""

import numbers
import threading
from contextlib import contextmanager

import numpy as np
import torch
from skorch.dataset import unpack_data
from torch import nn

from skal.nets._classifier import NetClassifier
from skal.nets._modules import MLP


def _check_hidden_units(value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"loss_hidden_units must be a positive integer, got {value!r}.")
    return int(value)


class LossPredictionModule(nn.Module):
    """The loss-prediction module of Yoo & Kweon (2019, figure 2).

    Each tapped feature map goes through global average pooling (the mean over every axis
    after the channel axis; a ``(n, c)`` feature is taken as it is), a fully connected layer
    and a ReLU; the results are concatenated and one linear layer maps them to the predicted
    loss of each row.

    Parameters
    ----------
    in_features : sequence of int
        Channels (the size of axis 1) of each tapped feature, in the order they are given to
        :meth:`forward`.
    hidden_units : int, default=128
        Width of the fully connected layer of each tap (the paper's 128).

    Examples
    --------
    >>> import torch
    >>> from skal.nets import LossPredictionModule
    >>> module = LossPredictionModule([8, 16])
    >>> module([torch.ones(5, 8, 3, 3), torch.ones(5, 16)]).shape
    torch.Size([5])
    """

    def __init__(self, in_features, hidden_units=128):
        super().__init__()
        hidden_units = _check_hidden_units(hidden_units)
        in_features = [int(width) for width in in_features]
        if not in_features or min(in_features) < 1:
            raise ValueError(
                f"in_features must list at least one positive width, got {in_features!r}."
            )
        self.taps = nn.ModuleList(
            nn.Sequential(nn.Linear(width, hidden_units), nn.ReLU()) for width in in_features
        )
        self.output = nn.Linear(hidden_units * len(in_features), 1)

    def forward(self, features):
        if len(features) != len(self.taps):
            raise ValueError(
                f"The module was built for {len(self.taps)} tapped features, got "
                f"{len(features)}."
            )
        pooled = [tap(global_average_pool(f)) for tap, f in zip(self.taps, features, strict=True)]
        return self.output(torch.cat(pooled, dim=1)).squeeze(1)


def global_average_pool(feature):
    """``(n, c, ...)`` -> ``(n, c)``: the mean over the axes after the channel axis."""
    if feature.ndim > 2:
        return feature.flatten(2).mean(dim=2)
    return feature


def loss_ranking_loss(predicted, target, margin=1.0):
    """The pairwise ranking loss of Yoo & Kweon (2019, equation 2), averaged over pairs.

    The mini-batch is split in halves and row ``i`` of the first half is paired with row
    ``i`` of the second (an odd row out is left unpaired). For each pair ``(i, j)``::

        L = max(0, -s (l^_i - l^_j) + margin),  s = +1 if l_i > l_j else -1

    with ``l`` the target losses and ``l^`` the predicted ones (ties count as ``s = -1``, as in
    the paper's definition). The target losses are constants here: no gradient flows into
    them.

    Parameters
    ----------
    predicted : torch.Tensor of shape (n,)
        Predicted losses.
    target : torch.Tensor of shape (n,)
        The target model's losses of the same rows.
    margin : float, default=1.0
        The paper's margin xi.

    Returns
    -------
    loss : torch.Tensor, scalar
        The mean over the ``n // 2`` pairs; 0 when there is no pair.

    Examples
    --------
    >>> import torch
    >>> from skal.nets import loss_ranking_loss
    >>> float(loss_ranking_loss(torch.tensor([0.5, 2.0]), torch.tensor([3.0, 1.0])))
    2.5
    """
    half = predicted.shape[0] // 2
    if half == 0:
        return predicted.sum() * 0.0
    target = target.detach()
    sign = torch.where(target[:half] > target[half:2 * half], 1.0, -1.0).to(predicted.dtype)
    gap = predicted[:half] - predicted[half:2 * half]
    return torch.clamp(margin - sign * gap, min=0.0).mean()


def default_loss_layers(module):
    """The layers tapped when none are named: the output of every ``torch.nn.ReLU`` module.

    In :class:`~skal.nets.MLP` that is each hidden layer (before its dropout); in
    :class:`~skal.nets.MNISTConvNet` the two convolutional blocks and the 128-unit layer,
    the counterpart of the paper's taps after each block of a ResNet.
    """
    return [name for name, layer in module.named_modules() if isinstance(layer, nn.ReLU)]


@contextmanager
def tapped(module, names):
    """Capture the outputs of ``module``'s sub-modules ``names`` during a forward pass.

    Yields a dict that the forward pass fills, ``{name: output}``; the hooks are removed on
    exit, so nothing of them stays on the module (it pickles and copies as before). A hook
    keeps only the outputs of forward passes run by the thread that tapped: threads scoring
    pool chunks with one network (joblib, dask) each see their own features.
    """
    layers = dict(module.named_modules())
    missing = [name for name in names if name not in layers]
    if missing:
        known = [name for name in layers if name]
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise ValueError(
            f"loss_layers names {missing} that are not sub-modules of "
            f"{type(module).__name__}; its sub-modules are: {shown}."
        )
    outputs = {}
    owner = threading.get_ident()

    def hook(name):
        def store(_layer, _inputs, output):
            if threading.get_ident() == owner:
                outputs[name] = output

        return store

    handles = [layers[name].register_forward_hook(hook(name)) for name in names]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def run_tapped(module, names, forward, *args, **kwargs):
    """``forward(*args, **kwargs)`` with the layers ``names`` of ``module`` tapped.

    Returns
    -------
    output : object
        What ``forward`` returns.
    features : list of torch.Tensor
        The tapped outputs, in the order of ``names``.
    """
    with tapped(module, names) as outputs:
        output = forward(*args, **kwargs)
    silent = [name for name in names if name not in outputs]
    if silent:
        raise ValueError(
            f"The loss_layers {silent} did not run in the forward pass; name layers the "
            "network uses on every input."
        )
    return output, [outputs[name] for name in names]


class LearningLossClassifier(NetClassifier):
    """A :class:`~skal.nets.NetClassifier` with a loss-prediction module (learning loss).

    Yoo & Kweon (2019) attach a small module to intermediate layers of the target network
    that learns to predict the network's loss on a row from the row alone; active learning
    then labels the rows with the highest predicted loss
    (:class:`~skal.strategies.LearningLoss`). The module
    (:class:`~skal.nets.LossPredictionModule`: global average pooling, a fully connected layer
    and a ReLU per tapped layer, concatenated, one linear output) reads the layers named in
    ``loss_layers`` through forward hooks, so any network works unchanged. Both are trained
    together on each mini-batch of size ``B`` with the paper's loss::

        (1/B) sum_i l_i  +  loss_weight * ranking loss of (l^, l) over B/2 pairs

    (:func:`~skal.nets.loss_ranking_loss`, margin ``loss_margin``). After the first
    ``loss_detach_after`` epochs of each ``fit`` the tapped features are detached, so the
    ranking loss trains only the loss-prediction module and no longer the network (the paper
    does so after 120 of 200 epochs). The training loss in ``history_`` is the sum above.

    It is a scikit-learn classifier like :class:`~skal.nets.NetClassifier` (``clone``,
    ``get_params``, ``GridSearchCV``), usable as the estimator of an
    :class:`~skal.ActiveLearner`, whose ``predict_loss`` it answers.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=MLP
        The target network, as for :class:`~skal.nets.NetClassifier`.
    loss_layers : list of str or None, default=None
        Names of the sub-modules whose outputs feed the loss-prediction module (as in
        ``module.named_modules()``, e.g. ``["features.3", "features.7"]``). ``None`` taps
        the output of every ``torch.nn.ReLU`` module: each hidden layer of
        :class:`~skal.nets.MLP`, the two convolutional blocks and the 128-unit layer of
        :class:`~skal.nets.MNISTConvNet`. A network without ReLU modules needs names. A
        module called more than once per forward pass (one ReLU reused after every layer)
        is tapped at its last call: name the layers themselves then.
    loss_hidden_units : int, default=128
        Width of the fully connected layer of each tap.
    loss_margin : float, default=1.0
        The margin xi of the ranking loss.
    loss_weight : float, default=1.0
        The weight lambda of the ranking loss in the joint loss.
    loss_detach_after : float or int, default=0.6
        When the tapped features are detached from the loss-prediction module: a float in
        ``[0, 1]`` is a fraction of ``max_epochs`` (0.6 is the paper's 120 of 200 epochs, 1.0
        never detaches, 0.0 always does), an int is a number of epochs.
    criterion : torch loss class, default=torch.nn.CrossEntropyLoss
        Any loss with a ``reduction`` argument: its per-row values are the targets of the
        loss-prediction module.
    **kwargs
        Every other parameter of :class:`~skal.nets.NetClassifier` (``max_epochs``, ``lr``,
        ``random_state``, ``module__*``, ...).

    Attributes
    ----------
    loss_module_ : LossPredictionModule
        The trained loss-prediction module.
    loss_layers_ : list of str
        The tapped layers.

    References
    ----------
    D. Yoo and I. S. Kweon, "Learning Loss for Active Learning", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from skal.nets import LearningLossClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> net = LearningLossClassifier(max_epochs=5, random_state=0).fit(X, y)
    >>> net.loss_layers_
    ['hidden.2']
    >>> net.predict_loss(X[:4]).shape
    (4,)
    """

    def __init__(
        self,
        module=MLP,
        *,
        loss_layers=None,
        loss_hidden_units=128,
        loss_margin=1.0,
        loss_weight=1.0,
        loss_detach_after=0.6,
        criterion=torch.nn.CrossEntropyLoss,
        **kwargs,
    ):
        super().__init__(module, criterion=criterion, **kwargs)
        self.loss_layers = loss_layers
        self.loss_hidden_units = loss_hidden_units
        self.loss_margin = loss_margin
        self.loss_weight = loss_weight
        self.loss_detach_after = loss_detach_after

    # ------------------------------------------------------------------ building
    def initialize_module(self):
        """Build the network, then the loss-prediction module sized by one dry forward pass."""
        super().initialize_module()
        layers = self.loss_layers
        if layers is None:
            layers = default_loss_layers(self.module_)
            if not layers:
                raise ValueError(
                    f"{type(self.module_).__name__} has no torch.nn.ReLU module to tap by "
                    "default; name the layers that feed the loss-prediction module, e.g. "
                    "loss_layers=['encoder.2', 'encoder.5'] (see module.named_modules())."
                )
        elif isinstance(layers, str) or not all(isinstance(name, str) for name in layers):
            raise TypeError(
                f"loss_layers must be a list of sub-module names (str), got {layers!r}."
            )
        layers = list(layers)
        if not layers:
            raise ValueError("loss_layers is empty; name at least one layer, or pass None.")
        shape = vars(self).get("_input_shape")
        if shape is None:
            raise ValueError(
                f"{type(self).__name__} sizes its loss-prediction module from the data: call "
                "fit (or partial_fit) rather than initialize."
            )
        modes = [(m, m.training) for m in self.module_.modules()]
        self.module_.eval()
        try:
            with torch.no_grad():
                _, features = run_tapped(self.module_, layers, self.module_,
                                         torch.zeros((2, *shape)))
        finally:
            for m, training in modes:
                m.training = training
        self.loss_layers_ = layers
        self.loss_module_ = LossPredictionModule(
            [f.shape[1] for f in features], self.loss_hidden_units
        )
        return self

    def initialize_criterion(self):
        """Build the criterion with per-row losses (``reduction="none"``)."""
        super().initialize_criterion()
        if not hasattr(self.criterion_, "reduction"):
            raise TypeError(
                f"The criterion {type(self.criterion_).__name__} has no reduction setting; "
                "the loss-prediction module needs a torch loss that can give per-row losses "
                "(reduction='none')."
            )
        self.criterion_.reduction = "none"
        return self

    # ------------------------------------------------------------------ training
    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        # The detach epoch counts from the start of this fit (warm starts keep the history).
        self._first_epoch = len(self.history_)
        return super().fit_loop(X, y, epochs=epochs, **fit_params)

    def _detach_epoch(self):
        value = self.loss_detach_after
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
            raise TypeError(f"loss_detach_after must be a float or an int, got {value!r}.")
        if isinstance(value, numbers.Integral):
            if value < 0:
                raise ValueError(f"loss_detach_after must be >= 0 epochs, got {value}.")
            return int(value)
        if not 0.0 <= value <= 1.0:
            raise ValueError(
                f"loss_detach_after as a float is a fraction of max_epochs in [0, 1], got "
                f"{value}; give an int for a number of epochs."
            )
        return int(round(value * self.max_epochs))

    def _row_losses(self, y_pred, y_true, X=None, training=False):
        losses = super().get_loss(y_pred, y_true, X=X, training=training)
        return losses.reshape(losses.shape[0], -1).mean(dim=1) if losses.ndim > 1 else losses

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """The mean of the criterion's per-row losses (the target model's loss)."""
        return self._row_losses(y_pred, y_true, X=X, training=training).mean()

    def train_step_single(self, batch, **fit_params):
        """One joint step: the target loss plus ``loss_weight`` times the ranking loss."""
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred, features = run_tapped(
            self.module_, self.loss_layers_, self.infer, Xi, **fit_params
        )
        losses = self._row_losses(y_pred, yi, X=Xi, training=True)
        epoch = len(self.history_) - 1 - getattr(self, "_first_epoch", 0)
        if epoch >= self._detach_epoch():
            features = [f.detach() for f in features]
        predicted = self.loss_module_(features)
        loss = losses.mean() + self.loss_weight * loss_ranking_loss(
            predicted, losses, self.loss_margin
        )
        loss.backward()
        return {"loss": loss, "y_pred": y_pred}

    # ------------------------------------------------------------------ inference
    def predict_loss(self, X):
        """The loss the network is predicted to make on each row (higher: more informative).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        loss : ndarray of shape (n_samples,), float32
            The loss-prediction module's output: a score on the scale the ranking loss
            learns (only its order is meaningful), not a loss value in nats.
        """
        X = self._check_X(X)

        def predict(xb):
            features = run_tapped(self.module_, self.loss_layers_, self.module_, xb)[1]
            return self.loss_module_(features)

        with self._evaluating():
            return self._map_batches(X, predict, "predicted losses")
