"""Consistent MC dropout: K stochastic passes whose dropout masks are shared by every pool row.

Plain torch dropout layers are used; while sampling, the module is in evaluation mode (so
batch normalisation uses its running statistics and dropout is the identity) and a temporary
forward hook on each dropout layer multiplies its output by mask ``k`` of a bank of K masks
drawn once per call. Nothing of the user's module is changed afterwards. With ``expand=True``
the rows enter once and the first dropout layer to run repeats its output for each pass, so
the layers before it (identical in every pass) are computed once per row, not once per pass.
:func:`fill_samples` is the sampling loop the networks of :mod:`skal.nets` share.
"""

import warnings

import numpy as np
import torch
from torch import nn

# Multiplicative dropout layers whose masks can be made consistent. Element-wise dropout draws
# one mask entry per feature; the N-d variants drop whole channels, as they do when training.
_ELEMENTWISE = (nn.Dropout,)
_CHANNELWISE = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
# Alpha dropout is not a multiplication by a mask, so a hook cannot reproduce it.
_UNSUPPORTED = (nn.AlphaDropout, nn.FeatureAlphaDropout)


def dropout_layers(module):
    """The dropout layers of ``module`` in registration order; error on unsupported kinds."""
    layers = []
    for name, layer in module.named_modules():
        if isinstance(layer, _UNSUPPORTED):
            raise TypeError(
                f"Layer {name!r} is {type(layer).__name__}, which MC dropout sampling does not "
                "support; use nn.Dropout or nn.Dropout1d/2d/3d."
            )
        if isinstance(layer, _ELEMENTWISE + _CHANNELWISE):
            layers.append(layer)
    return layers


def _mask_shape(layer, output):
    if isinstance(layer, _CHANNELWISE) and output.dim() > 2:
        return (output.shape[1],) + (1,) * (output.dim() - 2)
    return tuple(output.shape[1:])


class ConsistentMCDropout:
    """Context manager that turns a module's dropout layers into consistent MC dropout.

    Inside the ``with`` block the module is in evaluation mode and each dropout layer
    multiplies its output by mask ``k`` of its own bank of ``n_samples`` masks, where ``k`` is
    the pass of each row set with :meth:`use_passes`. Banks are drawn on the CPU from
    per-layer seeds on the first forward pass, so the masks depend only on ``seed`` (not on
    the device, the chunking or the rows) and every pool row sees the same K masks. On exit
    the hooks are removed and every submodule's training flag is restored.

    Parameters
    ----------
    module : torch.nn.Module
    n_samples : int
        Number of stochastic passes K.
    seed : int
        Seeds the masks.
    """

    def __init__(self, module, n_samples, seed):
        self.module = module
        self.n_samples = n_samples
        self.seed = seed

    def __enter__(self):
        self._layers = dropout_layers(self.module)
        if not self._layers:
            warnings.warn(
                f"{type(self.module).__name__} has no dropout layers: every MC-dropout sample "
                "is the same prediction, so sample-based strategies see no disagreement.",
                UserWarning,
                stacklevel=3,
            )
        seeds = np.random.SeedSequence(self.seed).generate_state(max(len(self._layers), 1))
        self._seeds = [int(s) for s in seeds]
        self._banks = [None] * len(self._layers)
        self._passes = 0
        self._expand_by = 1
        self._first_pass = 0
        self._expanded = False
        self._modes = [(m, m.training) for m in self.module.modules()]
        self.module.eval()
        self._handles = [
            layer.register_forward_hook(self._hook(i)) for i, layer in enumerate(self._layers)
        ]
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        for m, training in self._modes:
            m.training = training
        self._banks = None
        return False

    @property
    def has_dropout(self):
        """Whether the module has a dropout layer to sample (known inside the ``with`` block)."""
        return bool(self._layers)

    def use_passes(self, start, stop, n_rows, expand=False):
        """Make the next forward pass compute passes ``start..stop-1`` of ``n_rows`` rows.

        With ``expand=False`` the input must be the rows repeated ``stop - start`` times,
        pass-major (all rows of pass ``start`` first). With ``expand=True`` the input is the
        ``n_rows`` rows once: the first dropout layer to run in that forward pass repeats its
        output ``stop - start`` times, pass-major, before applying the masks, and the later
        layers see the repeated rows. That is right only when no activation from before that
        layer reaches the output by another path and no layer mixes rows; the caller checks.
        """
        self._expand_by = stop - start if expand else 1
        self._first_pass = start
        self._expanded = False
        if stop - start == 1:
            self._passes = start
        else:
            self._passes = torch.arange(start, stop).repeat_interleave(n_rows)

    def _bank(self, i, layer, output):
        shape = _mask_shape(layer, output)
        bank = self._banks[i]
        if bank is None:
            generator = torch.Generator().manual_seed(self._seeds[i])
            keep = 1.0 - float(layer.p)
            uniform = torch.rand((self.n_samples, *shape), generator=generator)
            if keep > 0:
                bank = (uniform < keep).to(output.dtype) / keep
            else:
                bank = torch.zeros_like(uniform, dtype=output.dtype)
            bank = bank.to(output.device)
            self._banks[i] = bank
        elif bank.shape[1:] != shape:
            raise ValueError(
                f"Dropout layer {i} saw features of shape {shape} after {bank.shape[1:]}: "
                "MC dropout needs inputs of one shape."
            )
        return bank

    def _hook(self, i):
        def hook(layer, inputs, output):
            bank = self._bank(i, layer, output)
            if self._expand_by > 1 and not self._expanded:
                # One broadcast product builds the pass-major copies and masks them at once.
                self._expanded = True
                masks = bank[self._first_pass : self._first_pass + self._expand_by]
                return (output.unsqueeze(0) * masks.unsqueeze(1)).flatten(0, 1)
            passes = self._passes
            if isinstance(passes, torch.Tensor):
                if passes.device != bank.device:
                    passes = self._passes = passes.to(bank.device)
                return output * bank[passes]
            return output * bank[passes]

        return hook


def first_output(output):
    """The prediction of a module's output: skorch lets a module return a tuple led by it."""
    return output[0] if isinstance(output, tuple | list) else output


def module_device(module):
    """The device of a module's first parameter or buffer (the CPU when it has neither)."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def rows_tensor(X, rows, device):
    """``X[rows]`` as a tensor on ``device``; copied when read-only (a memory map), as torch
    needs writable arrays."""
    block = X[rows]
    if not block.flags.writeable:
        block = block.copy()
    return torch.from_numpy(block).to(device)


def fill_samples(samples, module, mc, X, batch_rows, nonlin, shared_prefix=True):
    """Fill ``samples`` (passes, rows, outputs) with ``nonlin`` of the module's MC outputs.

    Runs inside ``mc``, a :class:`ConsistentMCDropout` over ``module`` entered for
    ``samples.shape[0]`` passes, under :func:`torch.inference_mode`. With ``shared_prefix``,
    the layers before the first dropout layer run once per row when a probe on a few rows
    shows that this gives the same outputs as running the whole network once per pass (and
    the whole network runs once per pass otherwise).
    """
    shared = (
        shared_prefix
        and samples.shape[0] > 1
        and mc.has_dropout
        and _shared_prefix_agrees(module, mc, X)
    )
    if shared:
        try:
            _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, shared=True)
            return samples
        except _PrefixMismatch:
            pass
    _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, shared=False)
    return samples


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
        output = first_output(module(inputs))
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
    xb = rows_tensor(X, slice(0, _PROBE_ROWS), module_device(module))
    stop = min(mc.n_samples, _PROBE_PASSES)
    try:
        shared = _mc_forward(module, mc, xb, 0, stop, shared=True)
    except _PrefixMismatch:
        return False
    full = _mc_forward(module, mc, xb, 0, stop, shared=False)
    # Outputs (logits), not probabilities: a saturated softmax would hide a difference.
    return bool(torch.allclose(shared, full, rtol=1e-4, atol=1e-5))


def _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, shared):
    """Fill ``samples`` (passes, rows, outputs), holding at most ``batch_rows`` rows at once.

    A chunk of rows runs several passes in one forward pass when it is smaller than
    ``batch_rows``. With the shared prefix, chunks have ``batch_rows // n_passes`` rows, so
    that after the expansion one forward pass holds the chunk's rows for all passes (at most
    ``batch_rows`` rows) and the prefix runs once per row.
    """
    n_passes = samples.shape[0]
    device = module_device(module)
    chunk = max(1, batch_rows // n_passes) if shared else batch_rows
    for first in range(0, X.shape[0], chunk):
        rows = slice(first, min(first + chunk, X.shape[0]))
        xb = rows_tensor(X, rows, device)
        passes_per_forward = max(1, batch_rows // xb.shape[0])
        for start in range(0, n_passes, passes_per_forward):
            stop = min(n_passes, start + passes_per_forward)
            output = _mc_forward(module, mc, xb, start, stop, shared)
            values = nonlin(output).reshape(stop - start, xb.shape[0], -1)
            samples[start:stop, rows] = values.to(torch.float32).cpu().numpy()
