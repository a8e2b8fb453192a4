"""Ready-made torch modules for active learning: an MLP and the BatchBALD paper's MNIST CNN.

Both return logits (pair them with ``CrossEntropyLoss``, the default criterion of
:class:`~skal.nets.NetClassifier`) and offer ``embed(x)``, the penultimate-layer features that
:meth:`NetClassifier.transform <skal.nets.NetClassifier.transform>` returns.
"""

import numbers

from torch import nn


def _check_size(value, name):
    if value is None:
        raise ValueError(
            f"{name} is None: build the module through NetClassifier or NetRegressor, which "
            f"infer it from the data, or pass module__{name}."
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


class MLP(nn.Module):
    """Multi-layer perceptron with dropout after every hidden layer.

    Each hidden layer is ``Linear -> [BatchNorm1d] -> ReLU -> Dropout``; the output layer is a
    ``Linear`` producing logits (or, in a regressor, the predictions). Under
    :meth:`NetClassifier.predict_proba_samples <skal.nets.NetClassifier.predict_proba_samples>`
    (and NetRegressor's samples) the dropout layers become consistent MC dropout and batch
    normalisation stays in evaluation mode.

    Parameters
    ----------
    n_features : int, default=None
        Input features; :class:`~skal.nets.NetClassifier` and
        :class:`~skal.nets.NetRegressor` fill it in from the data.
    n_classes : int, default=None
        Output units: logits for :class:`~skal.nets.NetClassifier`, predicted values for
        :class:`~skal.nets.NetRegressor`; both fill it in from ``y``.
    hidden_units : int or tuple of int, default=(100,)
        Width of each hidden layer.
    dropout : float, default=0.5
        Dropout probability after each hidden layer.
    batch_norm : bool, default=False
        Add ``BatchNorm1d`` after each hidden linear layer.
    """

    def __init__(
        self, n_features=None, n_classes=None, hidden_units=(100,), dropout=0.5, batch_norm=False
    ):
        super().__init__()
        n_features = _check_size(n_features, "n_features")
        n_classes = _check_size(n_classes, "n_classes")
        if isinstance(hidden_units, numbers.Integral):
            hidden_units = (hidden_units,)
        layers = []
        width = n_features
        for units in hidden_units:
            units = _check_size(units, "hidden_units")
            layers.append(nn.Linear(width, units))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers += [nn.ReLU(), nn.Dropout(dropout)]
            width = units
        self.hidden = nn.Sequential(nn.Flatten(), *layers)
        self.output = nn.Linear(width, n_classes)

    def embed(self, x):
        """Penultimate-layer features (the last hidden layer, after dropout)."""
        return self.hidden(x)

    def forward(self, x):
        return self.output(self.hidden(x))


class MNISTConvNet(nn.Module):
    """The MNIST CNN of the BatchBALD paper (Kirsch, van Amersfoort and Gal, 2019).

    ``conv(32, 5x5) -> dropout2d -> maxpool 2 -> relu -> conv(64, 5x5) -> dropout2d -> maxpool 2
    -> relu -> linear(128) -> dropout -> relu -> linear(n_classes)``. Convolutional dropout
    drops whole channels, as in the paper's code.

    Parameters
    ----------
    n_features : int, default=784
        Must be 784: the input is 1x28x28 images, given as ``(n, 1, 28, 28)`` or flat
        ``(n, 784)`` rows.
    n_classes : int, default=10
        Output logits; :class:`~skal.nets.NetClassifier` fills it in from ``y``.
    dropout : float, default=0.5
        Dropout probability of every dropout layer.
    """

    image_shape = (1, 28, 28)

    def __init__(self, n_features=784, n_classes=10, dropout=0.5):
        super().__init__()
        n_features = 784 if n_features is None else _check_size(n_features, "n_features")
        if n_features != 784:
            raise ValueError(
                f"MNISTConvNet takes 1x28x28 images (784 features), got n_features={n_features}."
            )
        n_classes = _check_size(10 if n_classes is None else n_classes, "n_classes")
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=5),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=5),
            nn.Dropout2d(dropout),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 128),
            nn.Dropout(dropout),
            nn.ReLU(),
        )
        self.output = nn.Linear(128, n_classes)

    def embed(self, x):
        """The 128 penultimate-layer features."""
        return self.features(x.reshape(-1, *self.image_shape))

    def forward(self, x):
        return self.output(self.embed(x))


__all__ = ["MLP", "MNISTConvNet"]
