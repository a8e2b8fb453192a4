"""Consistent MC dropout: K stochastic passes whose dropout masks are shared by every pool row.

Plain torch dropout layers are used; while sampling, the module is in evaluation mode (so
batch normalisation uses its running statistics and dropout is the identity) and a temporary
forward hook on each dropout layer multiplies its output by mask ``k`` of a bank of K masks
drawn once per call. Nothing of the user's module is changed afterwards.

How the K passes are laid out (``expansion``, set per forward pass):

* ``"replicate"``: the input holds every row once per pass; the whole network runs K times.
* ``"prefix"``: the rows enter once and the first dropout layer to run repeats its output
  for each pass, so the layers before it (identical in every pass) run once per row.
* ``"linear"``: as ``"prefix"``, but when that first layer drops whole channels its masks
  wait for the next convolution. The layers in between run once per row, which is right for
  those that commute with scaling a channel by a non-negative number (ReLU, max or average
  pooling), and the convolution is linear in its input channels, so its output for pass k
  is the sum over channels of mask k's entry times that channel's contribution, computed
  once per row: one convolution and a small matrix product instead of K convolutions.
  Whether the masks may wait is read from the module's graph traced by ``torch.fx``
  (:func:`_deferral_plan`), never from data.

Both sharing layouts are also checked against ``"replicate"`` on a few rows before use.
:func:`fill_samples` is the sampling loop the networks of :mod:`skal.nets` share.
"""

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Multiplicative dropout layers whose masks can be made consistent. Element-wise dropout draws
# one mask entry per feature; the N-d variants drop whole channels, as they do when training.
_ELEMENTWISE = (nn.Dropout,)
_CHANNELWISE = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
# Alpha dropout is not a multiplication by a mask, so a hook cannot reproduce it.
_UNSUPPORTED = (nn.AlphaDropout, nn.FeatureAlphaDropout)
# Convolutions that can take channel masks deferred from an earlier dropout layer.
_CONVOLUTIONS = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}
EXPANSIONS = ("linear", "prefix", "replicate")


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
    multiplies its output by mask ``k`` of its own bank of ``n_samples`` masks (one bank per
    use, when ``forward`` calls a layer more than once), where ``k`` is the pass of each row
    set with :meth:`use_passes`. Banks are drawn on the CPU from per-layer seeds on the first
    forward pass, so the masks depend only on ``seed`` (not on the device, the chunking or
    the rows) and every pool row sees the same K masks. The rows must be on dimension 0 of
    every dropout layer's input (a ``ValueError`` says otherwise). On exit
    the hooks are removed, every submodule's training flag is restored and the convolutions'
    ``forward`` is their own again.

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
        names = {id(layer): name for name, layer in self.module.named_modules()}
        self._names = [names[id(layer)] or "(the module)" for layer in self._layers]
        if not self._layers:
            warnings.warn(
                f"{type(self.module).__name__} has no dropout layers: every MC-dropout sample "
                "is the same prediction, so sample-based strategies see no disagreement.",
                UserWarning,
                stacklevel=3,
            )
        seeds = np.random.SeedSequence(self.seed).generate_state(max(len(self._layers), 1))
        self._seeds = [int(s) for s in seeds]
        # One bank per layer and call within a forward pass: a layer used twice (one
        # ``self.dropout`` after layers of different widths) draws independent masks per use.
        self._banks = {}
        self._new_forward(self.module, ())
        self.use_passes(0, 1, 1)
        self._n_rows = None  # until use_passes says how many rows: pass 0 on any rows
        self._modes = [(m, m.training) for m in self.module.modules()]
        self._handles, self._convolutions = [], []
        try:
            self.module.eval()
            # Channel masks may wait only where the graph, traced in evaluation mode, shows
            # they can (see _deferral_plan); only that convolution's forward is replaced.
            plan = _deferral_plan(self.module)
            self._defer_from, self._defer_to = plan if plan is not None else (None, None)
            for i, layer in enumerate(self._layers):
                self._handles.append(layer.register_forward_hook(self._hook(i)))
            # Uses of a layer are counted from the start of each forward pass of the module.
            self._handles.append(self.module.register_forward_pre_hook(self._new_forward))
            if self._defer_to is not None:
                self._defer_to.forward = self._conv_forward(self._defer_to)
                self._convolutions.append(self._defer_to)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info):
        for handle in self._handles:
            handle.remove()
        for conv in self._convolutions:
            del conv.forward
        for m, training in self._modes:
            m.training = training
        self._banks = None
        return False

    @property
    def has_dropout(self):
        """Whether the module has a dropout layer to sample (known inside the ``with`` block)."""
        return bool(self._layers)

    def use_passes(
        self, start, stop, n_rows, expansion="replicate", channels_last=True, mix_always=False,
        *, expand=None,
    ):
        """Make the next forward pass compute passes ``start..stop-1`` of ``n_rows`` rows.

        With ``expansion="replicate"`` the input must be the rows repeated ``stop - start``
        times, pass-major (all rows of pass ``start`` first). Otherwise the input is the
        ``n_rows`` rows once and the network repeats them, pass-major: at the first dropout
        layer to run (``"prefix"``), or, when that layer drops whole channels, at the next
        convolution (``"linear"``; see the module's docstring). That is right only when no
        activation from before the repeat reaches the output by another path, no layer mixes
        rows, and (``"linear"``) the layers between the dropout layer and the convolution
        commute with scaling channels; the caller checks, and :meth:`check_expanded` reports
        a forward pass that did not repeat the rows as asked. ``channels_last``: whether that
        convolution's output has channels-last strides (faster, but a module that calls
        ``view`` on it fails). ``mix_always``: mix even where repeating its input would cost
        less (so that a probe on a few rows checks the code that runs on many).
        """
        if expand is not None or isinstance(expansion, bool):
            expand = expansion if expand is None else expand
            warnings.warn(
                "use_passes(expand=...) is deprecated: pass expansion='prefix' for "
                "expand=True, 'replicate' for False, or 'linear'.",
                DeprecationWarning,
                stacklevel=2,
            )
            expansion = "prefix" if expand else "replicate"
        if expansion not in EXPANSIONS:
            raise ValueError(f"expansion must be one of {EXPANSIONS}, got {expansion!r}.")
        self._expansion = expansion
        self._n_rows = n_rows
        self._channels_last = channels_last
        self._mix_always = mix_always
        self._first_pass = start
        self._n_passes = stop - start
        self._expanded = expansion == "replicate"
        self._deferred = None  # channel masks (passes, channels) waiting for a convolution
        self._broken = False
        if stop - start == 1:
            self._passes = start
        else:
            self._passes = torch.arange(start, stop).repeat_interleave(n_rows)

    def check_expanded(self):
        """Whether the last forward pass repeated its rows as :meth:`use_passes` asked."""
        return self._expanded and not self._broken

    def _new_forward(self, module, inputs):
        # a pre-hook on the module: uses of each layer are counted per forward pass
        self._calls = [0] * len(self._layers)

    def _bank(self, i, call, layer, output):
        shape = _mask_shape(layer, output)
        bank = self._banks.get((i, call))
        if bank is None:
            seed = self._seeds[i] if call == 0 else int(
                np.random.SeedSequence([self._seeds[i], call]).generate_state(1)[0]
            )
            generator = torch.Generator().manual_seed(seed)
            keep = 1.0 - float(layer.p)
            uniform = torch.rand((self.n_samples, *shape), generator=generator)
            if keep > 0:
                bank = (uniform < keep).to(output.dtype) / keep
            else:
                bank = torch.zeros_like(uniform, dtype=output.dtype)
            bank = bank.to(output.device)
            self._banks[i, call] = bank
        elif bank.shape[1:] != shape:
            raise ValueError(
                f"Dropout layer {i} (call {call} in a forward pass) saw features of shape "
                f"{shape} after {bank.shape[1:]}: MC dropout needs inputs of one shape."
            )
        return bank

    def _hook(self, i):
        def hook(layer, inputs, output):
            call = self._calls[i]
            self._calls[i] += 1
            n_rows = self._n_rows and self._n_rows * (self._n_passes if self._expanded else 1)
            if n_rows is not None and (output.dim() == 0 or output.shape[0] != n_rows):
                if self._expansion != "replicate":
                    # e.g. a dropout layer on a parallel branch that did not see the rows
                    # repeated: running the whole network once per pass is still right
                    raise _ExpansionMismatch
                raise ValueError(
                    f"Dropout layer {self._names[i]!r} ({type(layer).__name__}) gave "
                    f"{output.shape[0] if output.dim() else 0} rows on dimension 0 where the "
                    f"batch has {n_rows}: consistent MC dropout needs every dropout layer's "
                    "input to hold the batch's rows on dimension 0, one per row. Use "
                    "batch_first=True for recurrent and transformer layers; do not fold other "
                    "axes (tokens, patches) into the rows, or apply dropout to a subset of "
                    "the rows, a concatenation of them or a weight."
                )
            bank = self._bank(i, call, layer, output)
            if not self._expanded:
                if self._deferred is not None:
                    # A second dropout layer before a convolution took the deferred masks.
                    self._broken = True
                    return None
                masks = bank[self._first_pass : self._first_pass + self._n_passes]
                if self._expansion == "linear" and layer is self._defer_from \
                        and output.dim() > 2:
                    # The rows go on unmasked, as a copy: in evaluation mode dropout returns
                    # its input, which an in-place ReLU after it would overwrite (the
                    # caller's pool itself, when the dropout layer comes first).
                    self._deferred = masks.reshape(self._n_passes, -1)
                    return output.clone()
                # One broadcast product builds the pass-major copies and masks them at once.
                self._expanded = True
                return (output.unsqueeze(0) * masks.unsqueeze(1)).flatten(0, 1)
            passes = self._passes
            if isinstance(passes, torch.Tensor) and passes.device != bank.device:
                passes = self._passes = passes.to(bank.device)
            return output * bank[passes]

        return hook

    def _conv_forward(self, conv):
        original = type(conv).forward.__get__(conv)

        def forward(x):
            masks = self._deferred
            if masks is None:
                return original(x)
            self._deferred = None
            self._expanded = True
            n_passes, n_channels = masks.shape
            if x.dim() != conv.weight.dim() or x.shape[1] != n_channels:
                self._broken = True
                return original(x)
            # Mixing costs (kernel + passes) multiply-adds per channel, output and row where
            # repeating costs kernel x passes; its contributions are held for a block of rows
            # at a time, no more values than the repeated rows would be.
            kernel = math.prod(conv.kernel_size)
            if not self._mix_always and (
                (n_passes - 1) * (kernel - 1) <= 1 or n_channels > n_passes * x.shape[0]
            ):
                spread = masks.reshape(n_passes, 1, n_channels, *(1,) * (x.dim() - 2))
                return original((x.unsqueeze(0) * spread).flatten(0, 1))
            return _mix_channel_contributions(conv, x, masks, self._channels_last)

        return forward


# Layers and functions that commute with scaling a channel by a non-negative number, so that
# channel masks may be applied after them: element-wise ones (any number of dimensions), and
# pooling over the spatial dimensions only, whose count (the value) must be the
# convolution's. A 2-d pool given (rows, channels, length) treats it as one unbatched image
# and pools across channels.
_POOLING = [("MaxPool", "max_pool"), ("AvgPool", "avg_pool"),
            ("AdaptiveMaxPool", "adaptive_max_pool"), ("AdaptiveAvgPool", "adaptive_avg_pool")]
_SCALE_COMMUTING_LAYERS = {nn.ReLU: None, nn.LeakyReLU: None, nn.Identity: None} | {
    getattr(nn, f"{layer}{dims}d"): dims for layer, _ in _POOLING for dims in (1, 2, 3)
}
_SCALE_COMMUTING_FUNCTIONS = {F.relu: None, torch.relu: None, F.leaky_relu: None} | {
    getattr(F, f"{function}{dims}d"): dims for _, function in _POOLING for dims in (1, 2, 3)
}


def _deferral_plan(module):
    """``(dropout layer, convolution)`` between which channel masks may wait, or ``None``.

    Decided on the module's graph traced by ``torch.fx``, not on data: a probe on a few rows
    cannot tell ReLU from a clamp that those rows never reach. The first dropout layer in
    execution order must drop whole channels, and every operation after it up to a
    convolution (``groups=1``, zero padding, ``forward`` not replaced by its user) must take
    the one before as its only tensor input, be its only user, and commute with scaling
    channels (ReLU, leaky ReLU, pooling over as many dimensions as the convolution
    convolves). Hooks, which fx does not see, rule it out: global ones, and any on the layers
    in between or before the convolution. A module that does not trace gets ``None``. Call
    it in evaluation mode, as sampling runs.
    """
    if _global_hooks():
        return None
    try:
        graph = torch.fx.symbolic_trace(module).graph
    except Exception:  # noqa: BLE001 - any module fx cannot trace shares only the prefix
        return None
    layers = dict(module.named_modules())
    nodes = list(graph.nodes)
    first = next(
        (i for i, node in enumerate(nodes) if node.op == "call_module"
         and isinstance(layers.get(node.target), _ELEMENTWISE + _CHANNELWISE)),
        None,
    )
    if first is None or not isinstance(layers[nodes[first].target], _CHANNELWISE):
        return None
    previous, pooled_dims = nodes[first], set()
    for node in nodes[first + 1 :]:
        if list(previous.users) != [node] or not node.args or node.args[0] is not previous:
            return None
        other_inputs = [*node.args[1:], *node.kwargs.values()]
        if any(isinstance(value, torch.fx.Node) for value in other_inputs):
            return None
        layer = layers.get(node.target) if node.op == "call_module" else None
        # fx does not see hooks: one that changes an input (or, between the layers, an
        # output) could undo what the graph shows.
        if layer is not None and (layer._forward_pre_hooks or (
            type(layer) not in _CONVOLUTIONS and layer._forward_hooks
        )):
            return None
        if (
            type(layer) in _CONVOLUTIONS and layer.groups == 1
            and layer.padding_mode == "zeros" and "forward" not in vars(layer)
            and len(node.args) == 1 and not node.kwargs
            and pooled_dims <= {layer.weight.dim() - 2}
        ):
            return layers[nodes[first].target], layer
        if type(layer) in _SCALE_COMMUTING_LAYERS:  # exact type: a subclass may override forward
            dims = _SCALE_COMMUTING_LAYERS[type(layer)]
        elif node.op == "call_function" and node.target in _SCALE_COMMUTING_FUNCTIONS:
            dims = _SCALE_COMMUTING_FUNCTIONS[node.target]
        elif node.op == "call_method" and node.target == "relu":
            dims = None
        else:
            return None
        if dims is not None:
            pooled_dims.add(dims)
        previous = node
    return None


def _global_hooks():
    """Whether forward hooks for every module are registered (they run on every layer)."""
    from torch.nn.modules import module as torch_module

    return any(
        getattr(torch_module, name, None)
        for name in ("_global_forward_hooks", "_global_forward_pre_hooks")
    )


def _mix_channel_contributions(conv, x, masks, channels_last=True):
    """``conv`` of ``x`` with its input channels scaled by each row of ``masks``, pass-major.

    The convolution is linear in its input: each channel's contribution to every output
    channel comes from one grouped convolution (one group per input channel), and pass k's
    output is mask k's weighted sum of the contributions plus the bias. The contributions of
    ``passes x rows // channels`` rows are held at a time. With ``channels_last`` the output
    has channels-last strides (pooling runs several times faster on them on a CPU, and they
    come free from the product).
    """
    n_rows, n_channels = x.shape[:2]
    n_passes, n_out = masks.shape[0], conv.out_channels
    weight = conv.weight.transpose(0, 1).reshape(n_channels * n_out, 1, *conv.kernel_size)
    masks = masks.to(x.dtype)
    if conv.bias is not None:  # the bias is a contribution in every pass
        masks = torch.cat([masks, masks.new_ones((n_passes, 1))], dim=1)
    block = max(1, n_passes * n_rows // n_channels)
    out = None
    for first in range(0, n_rows, block):
        xb = x[first : first + block]
        parts = _CONVOLUTIONS[type(conv)](
            xb, weight, None, conv.stride, conv.padding, conv.dilation, n_channels
        )
        spatial = parts.shape[2:]
        parts = parts.reshape(xb.shape[0], n_channels, n_out, -1)
        stacked = parts.new_empty(
            (masks.shape[1], xb.shape[0]) + ((parts.shape[3], n_out) if channels_last
                                             else (n_out, parts.shape[3]))
        )
        stacked[:n_channels] = parts.permute(1, 0, 3, 2) if channels_last else parts.transpose(0, 1)
        if conv.bias is not None:
            stacked[n_channels] = conv.bias if channels_last else conv.bias[:, None]
        mixed = (masks @ stacked.reshape(masks.shape[1], -1)).reshape(n_passes, xb.shape[0], -1)
        if block >= n_rows:
            out = mixed
            break
        if out is None:
            out = mixed.new_empty((n_passes, n_rows, mixed.shape[-1]))
        out[:, first : first + block] = mixed
    if channels_last:
        return out.reshape(n_passes * n_rows, *spatial, n_out).movedim(-1, 1)
    return out.reshape(n_passes * n_rows, n_out, *spatial)


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
    """``X[rows]`` as a tensor on ``device``, never sharing memory with ``X``: a module may
    write to its input (an in-place ReLU first), and torch needs writable arrays without
    negative strides. Moving to another device copies anyway."""
    block = X[rows]
    if torch.device(device).type == "cpu" or not block.flags.writeable \
            or any(stride < 0 for stride in block.strides):
        block = np.array(block, order="C")
    return torch.from_numpy(block).to(device)


def fill_samples(samples, module, mc, X, batch_rows, nonlin, expansion="linear"):
    """Fill ``samples`` (passes, rows, outputs) with ``nonlin`` of the module's MC outputs.

    Runs inside ``mc``, a :class:`ConsistentMCDropout` over ``module`` entered for
    ``samples.shape[0]`` passes, under :func:`torch.inference_mode`. ``expansion`` is the
    most sharing layout to try (see :class:`ConsistentMCDropout`): each sharing layout is used
    when a probe on a few rows shows that it gives the same outputs as running the whole
    network once per pass, and the next one down is tried otherwise, down to
    ``"replicate"``. ``"linear"`` is tried with a channels-last convolution output first.
    """
    if expansion not in EXPANSIONS:
        raise ValueError(f"expansion must be one of {EXPANSIONS}, got {expansion!r}.")
    candidates = [
        (candidate, channels_last)
        for candidate in EXPANSIONS[EXPANSIONS.index(expansion) : -1]
        for channels_last in ((True, False) if candidate == "linear" else (False,))
    ]
    if samples.shape[0] > 1 and mc.has_dropout and candidates:
        probe = _Probe(module, mc, X)
        for layout in candidates:
            if probe.agrees(*layout):
                try:
                    _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, *layout)
                    return samples
                except _ExpansionMismatch:
                    pass
    _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, "replicate")
    return samples


class _ExpansionMismatch(Exception):
    """A forward pass that was to repeat its rows did not give one output row per pool row
    and pass."""


# Rows that check that a module allows a sharing layout, and passes they check it over: with
# p = 0.1 and four channels, 3 passes drop no channel at all 28 % of the time, 8 passes 3 %.
_PROBE_ROWS = 3
_PROBE_PASSES = 8


def _mc_forward(module, mc, xb, start, stop, expansion, channels_last=True, mix_always=False):
    """The module's output for passes ``start..stop-1`` of the rows ``xb``, pass-major."""
    n_rows, n_passes = xb.shape[0], stop - start
    mc.use_passes(start, stop, n_rows, expansion, channels_last, mix_always)
    if expansion != "replicate" or n_passes == 1:
        inputs = xb
    else:
        inputs = xb.repeat((n_passes,) + (1,) * (xb.dim() - 1))
    sharing = expansion != "replicate"
    try:
        output = first_output(module(inputs))
    except RuntimeError as exc:
        # Repeating the rows inside the network broke a shape somewhere after it; running out
        # of memory (on any device) is not that, and retrying would only run out again.
        if not sharing or _out_of_memory(exc):
            raise
        raise _ExpansionMismatch from exc
    if sharing and not mc.check_expanded():
        raise _ExpansionMismatch
    if output.shape[0] != n_passes * n_rows:
        if sharing:
            raise _ExpansionMismatch
        raise ValueError(
            f"The module returned {output.shape[0]} rows for {n_passes * n_rows} input rows: "
            "MC dropout sampling needs one output row per input row."
        )
    return output


def _out_of_memory(exc):
    return isinstance(exc, torch.cuda.OutOfMemoryError) or any(
        text in str(exc) for text in ("out of memory", "can't allocate memory")
    )


class _Probe:
    """Compares a few rows' outputs under a sharing layout with running the whole network
    once per pass."""

    def __init__(self, module, mc, X):
        self.module, self.mc = module, mc
        self.rows = rows_tensor(X, slice(0, _PROBE_ROWS), module_device(module))
        self.stop = min(mc.n_samples, _PROBE_PASSES)
        self.reference = None

    def agrees(self, expansion, channels_last=True):
        try:
            shared = _mc_forward(
                self.module, self.mc, self.rows, 0, self.stop, expansion, channels_last,
                mix_always=True,
            )
        except _ExpansionMismatch:
            return False
        if self.reference is None:
            self.reference = _mc_forward(
                self.module, self.mc, self.rows, 0, self.stop, "replicate"
            )
        # Outputs (logits), not probabilities: a saturated softmax would hide a difference.
        return bool(torch.allclose(shared, self.reference, rtol=1e-4, atol=1e-5))


def _fill_mc_samples(samples, module, mc, X, batch_rows, nonlin, expansion, channels_last=True):
    """Fill ``samples`` (passes, rows, outputs), holding at most ``batch_rows`` rows at once.

    A chunk of rows runs several passes in one forward pass when it is smaller than
    ``batch_rows``. When the network repeats the rows itself, chunks have
    ``batch_rows // n_passes`` rows, so that after the repeat one forward pass holds the
    chunk's rows for all passes (at most ``batch_rows`` rows) and what comes before the
    repeat runs once per row.
    """
    n_passes = samples.shape[0]
    device = module_device(module)
    chunk = batch_rows if expansion == "replicate" else max(1, batch_rows // n_passes)
    for first in range(0, X.shape[0], chunk):
        rows = slice(first, min(first + chunk, X.shape[0]))
        xb = rows_tensor(X, rows, device)
        passes_per_forward = max(1, batch_rows // xb.shape[0])
        for start in range(0, n_passes, passes_per_forward):
            stop = min(n_passes, start + passes_per_forward)
            output = _mc_forward(module, mc, xb, start, stop, expansion, channels_last)
            values = nonlin(output).reshape(stop - start, xb.shape[0], -1)
            samples[start:stop, rows] = values.to(torch.float32).cpu().numpy()
