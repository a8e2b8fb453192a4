"""Diverged training is an error: a skorch callback that stops at the first epoch whose loss
or weights are not finite, and the check that keeps non-finite outputs from passing as
predictions."""

import math

import numpy as np
import torch
from skorch.callbacks import Callback

_WAY_OUT = (
    "Scale the inputs (e.g. StandardScaler in a Pipeline) or lower the learning rate "
    "(lr)."
)


class TrainingDivergedError(ValueError):
    """Training produced a non-finite loss or non-finite weights.

    Attributes
    ----------
    epoch : int
        The epoch (counted as skorch's ``history`` counts them, from 1) at which the loss or
        the weights first became non-finite.
    """

    def __init__(self, message, epoch):
        super().__init__(message)
        self.epoch = epoch


def _non_finite_parameter(module):
    """Name of the first parameter holding a NaN or an infinity, else None."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if not bool(torch.isfinite(param).all()):
                return name
    return None


class DivergenceCheck(Callback):
    """Raise :class:`TrainingDivergedError` at the end of the first epoch in which a training
    batch had a non-finite loss or the module's weights became non-finite.

    A NaN loss never recovers (the weights it updates turn NaN too) and a network with NaN
    weights predicts NaN for every row, so training stops at once rather than running the
    remaining epochs. :class:`~skal.nets.NetClassifier` and :class:`~skal.nets.NetRegressor`
    have it among their default callbacks as
    ``"divergence_check"``; ``callbacks__divergence_check=None`` turns it off.
    """

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        record = net.history[-1]
        epoch = record.get("epoch", len(net.history))
        losses = [batch["train_loss"] for batch in record.get("batches", ())
                  if "train_loss" in batch]
        bad = next((loss for loss in losses if not math.isfinite(loss)), None)
        if bad is not None:
            raise TrainingDivergedError(
                f"Training diverged: the training loss became {bad} at epoch {epoch}. "
                f"{_WAY_OUT}",
                epoch,
            )
        name = _non_finite_parameter(net.module_)
        if name is not None:
            raise TrainingDivergedError(
                f"Training diverged: the network's weights ({name!r}) became non-finite at "
                f"epoch {epoch}. {_WAY_OUT}",
                epoch,
            )


def check_finite_output(output, module, what, row_axis=0):
    """Raise a clear ValueError when a network's ``output`` (an ndarray) is not finite."""
    finite = np.isfinite(output)
    if finite.all():
        return output
    other_axes = tuple(axis for axis in range(output.ndim) if axis != row_axis)
    bad_rows = np.flatnonzero(~finite.all(axis=other_axes))
    where = (
        f"for {bad_rows.size} of {output.shape[row_axis]} rows (the first is row {bad_rows[0]})"
    )
    name = _non_finite_parameter(module)
    if name is not None:
        cause = (
            f"its weights are non-finite ({name!r}): the network was trained to divergence "
            f"or loaded so. Refit it; {_WAY_OUT[0].lower()}{_WAY_OUT[1:]}"
        )
    else:
        cause = (
            "the inputs overflow the network's float32 arithmetic. Scale the inputs (e.g. "
            "StandardScaler in a Pipeline)."
        )
    raise ValueError(f"The network computed non-finite {what} {where}: {cause}")
