"""skal.nets: the skorch classifier's scikit-learn manners, consistent MC dropout, embeddings,
and the networks inside learners, committees, pipelines and grid searches."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")
pytest.importorskip("skorch")

from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils import get_tags  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402
from skorch.callbacks import Callback  # noqa: E402
from torch import nn  # noqa: E402

from skal import ActiveLearner, CommitteeLearner  # noqa: E402
from skal.nets import (  # noqa: E402
    MLP,
    ConsistentMCDropout,
    MNISTConvNet,
    NetClassifier,
    TrainingDivergedError,
)
from skal.nets._mc_dropout import (  # noqa: E402
    _deferral_plan,
    _ExpansionMismatch,
    _mc_forward,
    _mix_channel_contributions,
)
from skal.strategies import KLDivergence  # noqa: E402

cuda = pytest.mark.cuda


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    # Tiny networks run several times faster on one thread than on two contended cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyMLP(MLP):
    """The MLP with test-sized defaults, so the estimator checks stay fast."""

    def __init__(self, n_features=None, n_classes=None, hidden_units=(16,), dropout=0.2,
                 batch_norm=False):
        super().__init__(n_features, n_classes, hidden_units, dropout, batch_norm)


def tiny_net(**params):
    defaults = dict(module=TinyMLP, max_epochs=10, lr=0.02, batch_size=32, n_samples=4,
                    random_state=0)
    return NetClassifier(**{**defaults, **params})


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype(np.float32), y


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=120, centers=3, n_features=5, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted(blobs):
    return tiny_net(module__hidden_units=(32,), module__dropout=0.5).fit(*blobs)


# ---------------------------------------------------------------------- lazy imports
def test_importing_skal_imports_neither_torch_nor_nets():
    code = (
        "import sys, skal, skal.strategies, skal.datasets; "
        "assert 'torch' not in sys.modules and 'skorch' not in sys.modules; "
        "assert 'skal.nets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------- scikit-learn checks
@parametrize_with_checks([tiny_net()])
def test_sklearn_compatible_net(estimator, check):
    check(estimator)


def test_string_labels_and_classes_parameter(blobs):
    X, y = blobs
    names = np.array(["ant", "bee", "cat"])[y]
    net = tiny_net().fit(X, names)
    assert_array_equal(net.classes_, ["ant", "bee", "cat"])
    assert set(net.predict(X)) <= set(names)
    # Classes announced up front get output units before they have labels.
    wide = tiny_net(classes=[0, 1, 2, 3]).fit(X[y < 2], y[y < 2])
    assert wide.predict_proba(X).shape == (X.shape[0], 4)
    assert wide.predict_proba_samples(X[:5]).shape == (4, 5, 4)


def test_seeding_is_reproducible_and_leaves_global_rng_alone(blobs):
    X, y = blobs
    torch_state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the legacy global RNG)
    a = tiny_net(random_state=3).fit(X, y)
    samples_a = a.predict_proba_samples(X)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert_array_equal(np.random.get_state()[1], np_state)  # noqa: NPY002
    b = tiny_net(random_state=3).fit(X, y)
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert_array_equal(samples_a, b.predict_proba_samples(X))
    # An int seed gives the same masks on every call, so chunked callers stay consistent.
    assert_array_equal(samples_a, a.predict_proba_samples(X))
    c = tiny_net(random_state=4).fit(X, y)
    assert not np.allclose(a.predict_proba(X), c.predict_proba(X))


def test_module_instance_is_copied_not_trained_in_place(blobs):
    X, y = blobs
    module = MLP(n_features=5, n_classes=3, hidden_units=(8,))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    net = tiny_net(module=module).fit(X, y)
    assert net.module_ is not module
    for key, value in module.state_dict().items():
        assert torch.equal(value, before[key])


def test_warm_start_continues_and_rejects_new_classes(blobs):
    X, y = blobs
    net = tiny_net(warm_start=True, max_epochs=2).fit(X[:60], y[:60])
    first = net.module_
    weights = next(first.parameters()).detach().clone()
    net.fit(X, y)
    assert net.module_ is first
    assert not torch.equal(next(first.parameters()), weights)
    assert len(net.history_) == 4
    # A new class needs a new output unit: the network starts afresh ...
    grown = tiny_net(warm_start=True).fit(X[y < 2], y[y < 2])
    two_class_module = grown.module_
    assert grown.fit(X, y).module_ is not two_class_module
    assert_array_equal(grown.classes_, [0, 1, 2])
    # ... unless the classes were announced; partial_fit never adds one.
    announced = tiny_net(warm_start=True, classes=[0, 1, 2]).fit(X[y < 2], y[y < 2])
    module = announced.module_
    assert announced.fit(X, y).module_ is module
    with pytest.raises(ValueError, match="not among the classes seen"):
        tiny_net().fit(X[y < 2], y[y < 2]).partial_fit(X, y)
    # partial_fit keeps the classes it was told about.
    partial = tiny_net().partial_fit(X[y < 2], y[y < 2], classes=[0, 1, 2])
    assert_array_equal(partial.classes_, [0, 1, 2])
    partial.partial_fit(X[y == 2], y[y == 2])


def test_device_auto_and_pickling(fitted, blobs):
    X, _ = blobs
    assert fitted.device == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(fitted.module_.parameters()).device.type == expected
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.device == "auto"
    assert_array_equal(restored.predict_proba_samples(X), fitted.predict_proba_samples(X))
    # skorch's own inference path works with device="auto" too.
    assert_allclose(fitted.forward(X).softmax(-1).numpy(), fitted.predict_proba(X), atol=1e-6)


# ---------------------------------------------------------------------- consistent MC dropout
def test_consistent_masks_shared_by_rows_and_different_across_passes(fitted, blobs):
    X, _ = blobs
    # A row between the clusters, where the sampled networks disagree visibly.
    same_row = np.repeat(X.mean(axis=0, keepdims=True), 40, axis=0)
    samples = fitted.predict_proba_samples(same_row, n_samples=12)
    assert samples.shape == (12, 40, 3)
    # Every row of pass k went through the same sampled network ...
    assert_array_equal(samples, np.broadcast_to(samples[:, :1], samples.shape))
    # ... and the passes are different networks.
    per_pass = samples[:, 0]
    assert np.unique(per_pass, axis=0).shape[0] == 12
    assert_allclose(samples.sum(axis=-1), 1, atol=1e-5)


def test_mask_bank_values_and_channelwise_masks():
    elementwise = nn.Sequential(nn.Dropout(0.3))
    with torch.inference_mode(), ConsistentMCDropout(elementwise, 6, seed=0) as mc:
        mc.use_passes(0, 6, 4)
        out = elementwise(torch.ones(24, 2000)).reshape(6, 4, 2000)
    assert torch.equal(out, out[:, :1].expand_as(out))
    values = np.unique(out.numpy())
    assert values.size == 2 and values[0] == 0 and np.isclose(values[1], 1 / 0.7)
    assert abs((out[:, 0] > 0).float().mean().item() - 0.7) < 0.03
    assert not torch.equal(out[0, 0], out[1, 0])
    channels = nn.Sequential(nn.Dropout2d(0.5))
    with torch.inference_mode(), ConsistentMCDropout(channels, 3, seed=1) as mc:
        mc.use_passes(1, 2, 5)
        out = channels(torch.ones(5, 8, 3, 3))
    # A whole channel is kept or dropped.
    assert torch.equal(out, out[:, :, :1, :1].expand_as(out))


@pytest.mark.parametrize("batch_norm", [False, True])
def test_samples_do_not_depend_on_batch_size(blobs, batch_norm):
    X, y = blobs
    net = tiny_net(module__batch_norm=batch_norm, module__dropout=0.5).fit(X, y)
    reference = net.predict_proba_samples(X, n_samples=7)
    for batch_rows in (1, 5, 13, 50, 10_000):
        net.set_params(inference_batch_size=batch_rows)
        assert_allclose(net.predict_proba_samples(X, n_samples=7), reference, atol=1e-6)
    # Rows keep their order: a permuted pool gives permuted samples.
    order = np.random.RandomState(0).permutation(X.shape[0])
    assert_allclose(net.predict_proba_samples(X[order], n_samples=7), reference[:, order],
                    atol=1e-6)


def test_batch_norm_untouched_and_no_autograd(blobs):
    X, y = blobs
    net = tiny_net(module__batch_norm=True).fit(X, y)
    module = net.module_
    module.train()
    bn = next(m for m in module.modules() if isinstance(m, nn.BatchNorm1d))
    stats = {k: v.clone() for k, v in bn.state_dict().items()}
    grad_enabled = []
    handle = bn.register_forward_hook(
        lambda m, i, o: grad_enabled.append((torch.is_grad_enabled(), m.training))
    )
    net.predict_proba_samples(X, n_samples=5)
    handle.remove()
    assert grad_enabled and all(flags == (False, False) for flags in grad_enabled)
    for key, value in bn.state_dict().items():
        assert torch.equal(value, stats[key])
    # Training flags are restored and no hook is left behind.
    assert all(m.training for m in module.modules())
    assert all(not m._forward_hooks for m in module.modules())


def test_mc_dropout_needs_dropout_layers(blobs):
    X, y = blobs
    no_dropout = tiny_net(module__dropout=0.0).fit(X, y)
    samples = no_dropout.predict_proba_samples(X, n_samples=3)
    assert_allclose(samples, np.broadcast_to(samples[:1], samples.shape), atol=1e-6)
    plain = nn.Sequential(nn.Linear(5, 3))
    with pytest.warns(UserWarning, match="no dropout layers"):
        tiny_net(module=plain).fit(X, y).predict_proba_samples(X, n_samples=2)
    alpha = nn.Sequential(nn.Linear(5, 8), nn.AlphaDropout(0.2), nn.Linear(8, 3))
    with pytest.raises(TypeError, match="AlphaDropout"):
        tiny_net(module=alpha).fit(X, y).predict_proba_samples(X)


def test_user_module_with_plain_dropout(blobs):
    X, y = blobs
    module = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 3))
    net = tiny_net(module=module).fit(X, y)
    samples = net.predict_proba_samples(np.repeat(X[:1], 5, axis=0), n_samples=6)
    assert_array_equal(samples, np.broadcast_to(samples[:, :1], samples.shape))
    assert np.ptp(samples[:, 0, 0]) > 0
    # Without embed(), transform returns the input of the last Linear layer.
    assert net.transform(X).shape == (X.shape[0], 16)
    assert not any(m._forward_pre_hooks for m in net.module_.modules())


# ---------------------------------------------------------------------- shared prefix
def full_replication(net):
    """A copy of ``net`` that runs the whole network once per pass (no shared prefix)."""
    full = pickle.loads(pickle.dumps(net))
    full._mc_expansion = "replicate"
    return full


def sampling_rows(net, X, n_samples, layer=None):
    """Samples, and the rows of each forward pass's input and output while sampling (of
    ``layer``'s, when given)."""
    seen = []
    handle = (net.module_ if layer is None else layer).register_forward_hook(
        lambda m, inputs, output: seen.append((inputs[0].shape[0], output.shape[0]))
    )
    try:
        samples = net.predict_proba_samples(X, n_samples=n_samples)
    finally:
        handle.remove()
    return samples, seen


def test_expanding_at_the_dropout_layer_equals_replicating_the_input():
    module = nn.Sequential(nn.Linear(4, 6), nn.Dropout(0.5), nn.Linear(6, 6), nn.Dropout(0.5))
    x = torch.randn(3, 4)
    with torch.inference_mode(), ConsistentMCDropout(module, 5, seed=0) as mc:
        mc.use_passes(1, 5, 3)
        replicated = module(x.repeat(4, 1))
        mc.use_passes(1, 5, 3, "prefix")
        expanded = module(x)
        # The boolean of earlier releases still works, with a warning.
        with pytest.warns(DeprecationWarning, match="expansion='prefix'"):
            mc.use_passes(1, 5, 3, expand=True)
        assert_array_equal(module(x).numpy(), expanded.numpy())
    assert expanded.shape == (12, 6)
    assert_allclose(expanded.numpy(), replicated.numpy(), atol=1e-6)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_shared_prefix_mlp_matches_full_replication(blobs, batch_norm):
    X, y = blobs
    net = tiny_net(module__hidden_units=(16, 8), module__batch_norm=batch_norm,
                   module__dropout=0.5).fit(X, y)
    samples, seen = sampling_rows(net, X, 7)
    reference, seen_full = sampling_rows(full_replication(net), X, 7)
    assert_allclose(samples, reference, atol=1e-6)
    # After the 3-row check, the 120 rows go in once and come out once per pass.
    assert seen[-1] == (120, 7 * 120)
    assert seen_full == [(7 * 120, 7 * 120)]


def test_shared_prefix_mnist_cnn_matches_full_replication():
    rng = np.random.RandomState(0)
    X = rng.rand(30, 784).astype(np.float32)
    y = np.arange(30) % 3
    net = NetClassifier(MNISTConvNet, max_epochs=1, random_state=0,
                        inference_batch_size=64).fit(X, y)
    samples, seen = sampling_rows(net, X, 10)
    reference = full_replication(net).predict_proba_samples(X, n_samples=10)
    assert_allclose(samples, reference, atol=1e-5)
    assert np.ptp(samples[:, 0, 0]) > 0
    # Chunks of 64 // 10 = 6 rows, all 10 passes in one forward pass of 60 rows.
    assert seen[2:] == [(6, 60)] * 5
    # The second convolution took the 6 rows once: the first dropout layer's channel masks
    # were mixed into its output by linearity.
    _, seen_conv = layouts_and_conv_rows(net.module_, torch.from_numpy(X[:6]), 10,
                                         net.module_.features[4])
    assert seen_conv == [(6, 60)]


@pytest.mark.parametrize("batch_rows, n_samples", [(50, 7), (5, 12), (1, 3), (1000, 1)])
def test_shared_prefix_chunks_stay_within_inference_batch_size(blobs, batch_rows, n_samples):
    X, y = blobs
    net = tiny_net(module__dropout=0.5, inference_batch_size=batch_rows).fit(X, y)
    samples, seen = sampling_rows(net, X, n_samples)
    # No forward pass holds more than inference_batch_size rows, before or after expanding
    # (beyond the 3-row check at the start).
    check = 2 if n_samples > 1 else 0
    assert all(rows_out <= batch_rows for _, rows_out in seen[check:])
    assert sum(rows_out for _, rows_out in seen[check:]) == n_samples * X.shape[0]
    reference = full_replication(net).predict_proba_samples(X, n_samples=n_samples)
    assert_allclose(samples, reference, atol=1e-6)


class _Skip(nn.Module):
    """Dropout inside a block whose pre-dropout activations also reach the output."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.hidden = nn.Linear(5, 8)
        self.dropout = nn.Dropout(0.5)
        self.output = nn.Linear(16 if kind == "concat" else 8, 3)

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        d = self.dropout(h)
        if self.kind == "add":  # a residual connection around the dropout
            return self.output(h + d)
        if self.kind == "concat":
            return self.output(torch.cat([h, d], dim=1))
        if self.kind == "pooled":  # mixes rows: the sum over the batch is not per row
            return self.output(d) + h.sum(0)[:3] / 100
        # "side": the dropout output is only pooled over the batch, so the output has a row
        # per input row, not per row and pass.
        return self.output(h) + d.mean()


@pytest.mark.parametrize("kind", ["add", "concat", "pooled", "side"])
def test_modules_the_shared_prefix_would_break_fall_back(blobs, kind):
    X, y = blobs
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the module's initial weights: some draws saturate the softmax
        module = _Skip(kind)
    net = tiny_net(module=module, max_epochs=2).fit(X, y)
    samples, seen = sampling_rows(net, X, 6)
    reference = full_replication(net).predict_proba_samples(X, n_samples=6)
    assert_allclose(samples, reference, atol=1e-6)
    if kind != "side":
        assert np.ptp(samples, axis=0).max() > 1e-3
    # The pool itself went through the whole network once per pass.
    assert seen[-1] == (6 * X.shape[0], 6 * X.shape[0])


# ------------------------------------------------------- channel masks through a convolution
_CHANNEL_DROPOUT = {1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}
_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
_MAX_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}


def layouts_and_conv_rows(module, x, n_passes, conv):
    """Outputs of every layout for passes 0..n_passes-1 of rows ``x``, and the rows going
    into and out of ``conv`` under the "linear" layout."""
    seen = []
    handle = conv.register_forward_hook(
        lambda m, inputs, output: seen.append((inputs[0].shape[0], output.shape[0]))
    )
    try:
        with torch.inference_mode(), ConsistentMCDropout(module, n_passes, seed=3) as mc:
            outputs = {}
            for layout in ("replicate", "prefix", "linear"):
                seen.clear()
                outputs[layout] = _mc_forward(module, mc, x, 0, n_passes, layout)
    finally:
        handle.remove()
    return outputs, seen


@settings(max_examples=30, deadline=None)
@given(
    dims=st.sampled_from([1, 2, 3]),
    in_channels=st.integers(1, 9),
    out_channels=st.integers(1, 5),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    bias=st.booleans(),
    between=st.sampled_from(["none", "relu", "max-pool, relu", "average pool"]),
    n_rows=st.integers(1, 4),
    n_passes=st.integers(1, 12),
    seed=st.integers(0, 2**16),
)
def test_channel_masks_mixed_through_a_convolution_equal_replication(
    dims, in_channels, out_channels, kernel, stride, padding, dilation, bias, between, n_rows,
    n_passes, seed
):
    torch.manual_seed(seed)
    side = 12 if dims < 3 else 10
    between_layers = {
        "none": [], "relu": [nn.ReLU()],
        "max-pool, relu": [_MAX_POOL[dims](2, ceil_mode=True), nn.LeakyReLU(0.1)],
        "average pool": [nn.AvgPool1d(2) if dims == 1 else nn.AdaptiveAvgPool2d(3)
                         if dims == 2 else nn.AvgPool3d(2)],
    }[between]
    conv = _CONV[dims](in_channels, out_channels, kernel, stride=stride, padding=padding,
                       dilation=dilation, bias=bias)
    module = nn.Sequential(
        _CONV[dims](2, in_channels, 1), _CHANNEL_DROPOUT[dims](0.4), *between_layers, conv,
        _CHANNEL_DROPOUT[dims](0.5), nn.Flatten(),
    ).double()
    x = torch.randn(n_rows, 2, *(side,) * dims, dtype=torch.float64)
    outputs, seen = layouts_and_conv_rows(module, x, n_passes, conv)
    for layout in ("prefix", "linear"):
        assert_allclose(outputs[layout].numpy(), outputs["replicate"].numpy(), atol=1e-12)
    # The layers before the convolution ran once per row; it gave them once per pass.
    assert seen == [(n_rows, n_passes * n_rows)]
    # Mixing itself, also where the convolution repeats its input instead (it saves nothing
    # for a kernel of one element or a single pass).
    masks = (torch.rand(n_passes, in_channels, generator=torch.Generator().manual_seed(seed))
             < 0.5).double() * 2
    h = torch.randn(n_rows, in_channels, *(side,) * dims, dtype=torch.float64)
    spread = masks.reshape(n_passes, 1, in_channels, *(1,) * dims)
    with torch.inference_mode():
        assert_allclose(_mix_channel_contributions(conv, h, masks).numpy(),
                        conv((h.unsqueeze(0) * spread).flatten(0, 1)).numpy(), atol=1e-12)


class _BetweenDropoutAndConv(nn.Module):
    """Channel dropout, then something that does not commute with scaling a channel."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.first = nn.Conv2d(1, 4, 3)
        self.dropout = nn.Dropout2d(0.5)
        self.norm = nn.BatchNorm2d(4)
        self.second_dropout = nn.Dropout2d(0.5)
        self.conv = nn.Conv2d(4, 3, 3)
        self.head = nn.Linear(4 * 6 * 6 if kind == "no convolution" else 3 * 4 * 4, 3)

    def forward(self, x):
        h = self.dropout(self.first(x.reshape(-1, 1, 8, 8)))
        if self.kind == "batch norm":  # an affine map: its shift does not scale
            h = self.norm(h)
        elif self.kind == "sigmoid":
            h = torch.sigmoid(h)
        elif self.kind == "second dropout":
            h = self.second_dropout(h)
        elif self.kind == "no convolution":
            return self.head(h.flatten(1))
        return self.head(torch.relu(self.conv(h)).flatten(1))


@pytest.mark.parametrize("kind", ["batch norm", "sigmoid", "second dropout", "no convolution"])
def test_channel_masks_that_cannot_wait_for_the_convolution_fall_back(kind):
    rng = np.random.RandomState(0)
    X = rng.rand(40, 64).astype(np.float32)
    y = np.arange(40) % 3
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = _BetweenDropoutAndConv(kind)
    net = NetClassifier(module, max_epochs=3, lr=0.05, random_state=0).fit(X, y)
    module = net.module_
    if kind == "batch norm":  # statistics far from the identity
        module.norm.running_mean.fill_(0.7)
    samples = net.predict_proba_samples(X, n_samples=8)
    reference = full_replication(net).predict_proba_samples(X, n_samples=8)
    assert_allclose(samples, reference, atol=1e-6)
    assert np.ptp(samples, axis=0).max() > 1e-3
    # The masks were applied at the dropout layer: after the probes on three rows, the rows
    # reached the convolution (or the head) once per pass.
    seen = []
    after = module.head if kind == "no convolution" else module.conv
    handle = after.register_forward_hook(
        lambda m, inputs, output: seen.append((inputs[0].shape[0], output.shape[0]))
    )
    net.predict_proba_samples(X, n_samples=8)
    handle.remove()
    assert seen[-1] == (8 * 40, 8 * 40)


class _SaturatingBetween(nn.Module):
    """Channel dropout, then an op that commutes with scaling only below its saturation."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.first = nn.Conv2d(1, 4, 3)
        self.dropout = nn.Dropout2d(0.5)
        self.conv = nn.Conv2d(4, 3, 3)
        self.head = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        h = self.dropout(self.first(x.reshape(-1, 1, 8, 8)))
        if self.kind == "hardtanh":
            h = nn.functional.hardtanh(h, 0.0, 1.0)
        elif self.kind == "clamp":
            h = h.clamp(max=1.0)
        elif self.kind == "data-dependent branch" and bool(h.sum() > 0):
            h = torch.relu(h)
        return self.head(self.conv(h).flatten(1))


@pytest.mark.parametrize("kind", ["hardtanh", "clamp", "data-dependent branch"])
def test_ops_that_commute_with_scaling_only_on_some_rows_do_not_defer(kind):
    # The probe's three rows are dim, so a clamp at 1 never binds on them; on the bright rows
    # it does. Only the module's structure may decide, not the probe's rows.
    rng = np.random.RandomState(0)
    X = np.vstack([rng.rand(3, 64) * 0.01, rng.rand(37, 64) * 5]).astype(np.float32)
    y = np.arange(40) % 3
    with torch.random.fork_rng():
        torch.manual_seed(0)
        module = _SaturatingBetween(kind)
    net = NetClassifier(module, max_epochs=2, lr=0.05, random_state=0).fit(X, y)
    assert _deferral_plan(net.module_) is None
    samples = net.predict_proba_samples(X, n_samples=10)
    assert_allclose(samples, full_replication(net).predict_proba_samples(X, n_samples=10),
                    atol=1e-6)


class _FunctionalBetween(nn.Module):
    """Pooling and activations called as functions between the dropout and the convolution."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(1, 4, 3)
        self.dropout = nn.Dropout2d(0.5)
        self.conv = nn.Conv2d(4, 6, 3)
        self.head = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        h = self.dropout(self.first(x.reshape(-1, 1, 10, 10)))
        h = nn.functional.leaky_relu(nn.functional.max_pool2d(h, 2), 0.1).relu()
        h = self.conv(nn.functional.avg_pool2d(h, 1))
        return self.head(h.view(h.size(0), -1))


def test_functional_ops_that_commute_with_scaling_defer_the_masks():
    module = _FunctionalBetween()
    assert _deferral_plan(module) == (module.dropout, module.conv)
    rng = np.random.RandomState(0)
    X = rng.rand(30, 100).astype(np.float32)
    net = NetClassifier(_FunctionalBetween, max_epochs=2, random_state=0).fit(X, np.arange(30) % 3)
    samples, conv_rows = sampling_rows(net, X, 12, net.module_.conv)
    assert_allclose(samples, full_replication(net).predict_proba_samples(X, n_samples=12),
                    atol=1e-6)
    assert conv_rows[-1] == (30, 12 * 30)


class _InPlaceAfterInputDropout(nn.Module):
    """Channel dropout on the input itself, then an in-place activation."""

    def __init__(self, training_branch=False):
        super().__init__()
        self.training_branch = training_branch
        self.dropout = nn.Dropout2d(0.5)
        self.activation = nn.LeakyReLU(0.3, inplace=True)
        self.conv = nn.Conv2d(2, 3, 3)
        self.head = nn.Linear(3 * 4 * 4, 3)

    def forward(self, x):
        h = self.dropout(x.reshape(-1, 2, 6, 6))
        if self.training_branch:  # a clamp outside training: not to be deferred past
            h = self.activation(h) if self.training else h.clamp(max=0.5)
        else:
            h = self.activation(h)
        return self.head(self.conv(h).flatten(1))


def _clamp_input(module, inputs):
    return (inputs[0].clamp(max=0.5),)


@pytest.mark.parametrize("case", ["in place", "training branch", "pre-hook", "global hook"])
def test_deferral_sees_in_place_ops_modes_and_hooks(case):
    rng = np.random.RandomState(0)
    X = np.vstack([rng.rand(3, 72) * 0.01, rng.randn(37, 72) * 3]).astype(np.float32)
    y = np.arange(40) % 3
    net = NetClassifier(_InPlaceAfterInputDropout, max_epochs=2, random_state=0,
                        module__training_branch=case == "training branch").fit(X, y)
    module, original = net.module_, X.copy()
    handle = None
    if case == "pre-hook":  # clamps the convolution's input: fx does not see it
        handle = module.conv.register_forward_pre_hook(_clamp_input)
    elif case == "global hook":
        handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        module.train()  # sampling must trace the graph it runs, in evaluation mode
        samples = net.predict_proba_samples(X, n_samples=8)
        reference = full_replication(net).predict_proba_samples(X, n_samples=8)
        plan = _deferral_plan(module.eval())
    finally:
        if handle is not None:
            handle.remove()
    assert (plan is not None) == (case == "in place")
    assert_allclose(samples, reference, atol=1e-6)
    assert_array_equal(X, original)  # the in-place activation wrote to a copy


class _ViewAfterPooling(nn.Module):
    """The layout of PyTorch's MNIST example: ``view`` flattens the pooled feature maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3)
        self.conv2 = nn.Conv2d(4, 6, 3)
        self.conv2_drop = nn.Dropout2d(0.5)
        self.fc = nn.Linear(6 * 2 * 2, 3)

    def forward(self, x):
        x = torch.relu(nn.functional.max_pool2d(self.conv1(x.reshape(-1, 1, 10, 10)), 2))
        x = self.conv2_drop(x)
        x = torch.relu(nn.functional.max_pool2d(self.conv2(x), 1))
        x = nn.functional.max_pool2d(x, 1)
        return self.fc(x.view(x.size(0), -1))


def test_a_module_that_views_the_convolution_output_gets_it_contiguous():
    rng = np.random.RandomState(0)
    X = rng.rand(30, 100).astype(np.float32)
    y = np.arange(30) % 3
    net = NetClassifier(_ViewAfterPooling, max_epochs=3, lr=0.05, random_state=0).fit(X, y)
    samples, conv_rows = sampling_rows(net, X, 12, net.module_.conv2)
    assert_allclose(samples, full_replication(net).predict_proba_samples(X, n_samples=12),
                    atol=1e-6)
    # Channels-last output broke the view on the probe's rows; the contiguous one did not,
    # and the convolution still took the rows once.
    assert conv_rows[-1] == (30, 12 * 30)
    with torch.inference_mode(), ConsistentMCDropout(net.module_, 12, seed=0) as mc:
        with pytest.raises(_ExpansionMismatch) as mismatch:
            _mc_forward(net.module_, mc, torch.from_numpy(X[:3]), 0, 12, "linear")
    assert "view" in str(mismatch.value.__cause__)


def test_convolutions_get_their_own_forward_back():
    module = MNISTConvNet()
    patched = module.features[0]
    patched.forward = patched.forward  # a user's instance attribute is left alone
    with torch.inference_mode(), ConsistentMCDropout(module, 40, seed=0) as mc:
        assert "forward" in vars(module.features[4])
        _mc_forward(module, mc, torch.rand(2, 784), 0, 40, "linear")
        with pytest.raises(ValueError, match="expansion must be one of"):
            mc.use_passes(0, 1, 1, "shared")
    assert "forward" not in vars(module.features[4])
    assert vars(patched)["forward"] == patched.forward



class _PoolBetween(nn.Module):
    """Channel dropout on (rows, channels, length), a pool, then a 1-d convolution. A 2-d
    pool given a 3-d tensor treats it as one unbatched image and pools across channels."""

    def __init__(self, pool="1d"):
        super().__init__()
        self.conv1 = nn.Conv1d(2, 4, 3)
        self.dropout = nn.Dropout1d(0.1)
        self.pool = (nn.MaxPool1d(3, stride=1, padding=1) if pool == "1d"
                     else nn.MaxPool2d((3, 1), stride=1, padding=(1, 0)))
        self.conv2 = nn.Conv1d(4, 3, 3)
        self.head = nn.Linear(3 * 28, 3)

    def forward(self, x):
        h = self.pool(self.dropout(self.conv1(x.reshape(-1, 2, 32))))
        return self.head(self.conv2(h).flatten(1))


@pytest.mark.parametrize("pool", ["1d", "2d"])
def test_masks_wait_only_for_pools_over_the_convolutions_dimensions(pool):
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 64).astype(np.float32), np.arange(40) % 3
    net = NetClassifier(_PoolBetween, module__pool=pool, max_epochs=2, lr=0.05,
                        random_state=4).fit(X, y)
    plan = _deferral_plan(net.module_.eval())
    assert (plan is not None) == (pool == "1d")
    # random_state=4 drops no channel in the probe's first passes: only the plan catches it
    assert_allclose(net.predict_proba_samples(X, n_samples=17),
                    full_replication(net).predict_proba_samples(X, n_samples=17), atol=1e-6)


class _ReusedDropout(nn.Module):
    """One dropout module after layers of different widths, a common idiom."""

    def __init__(self, convolutional=False):
        super().__init__()
        self.convolutional = convolutional
        if convolutional:
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 6, 3)
            self.dropout = nn.Dropout2d(0.5)
            self.head = nn.Linear(6 * 4 * 4, 3)
        else:
            self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 16)
            self.dropout = nn.Dropout(0.5)
            self.head = nn.Linear(16, 3)

    def forward(self, x):
        if self.convolutional:
            h = self.dropout(self.conv1(x.reshape(-1, 1, 8, 8)))
            h = self.dropout(torch.relu(self.conv2(torch.relu(h))))
            return self.head(h.flatten(1))
        h = self.dropout(torch.relu(self.fc1(x)))
        return self.head(self.dropout(torch.relu(self.fc2(h))))


@pytest.mark.parametrize("convolutional", [False, True])
def test_a_dropout_layer_used_twice_draws_masks_per_use(convolutional):
    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 64).astype(np.float32), np.arange(40) % 3
    X[1] = X[0]
    net = NetClassifier(_ReusedDropout, module__convolutional=convolutional, max_epochs=2,
                        lr=0.05, random_state=0).fit(X, y)
    samples = net.predict_proba_samples(X, n_samples=9)
    assert_allclose(samples, full_replication(net).predict_proba_samples(X, n_samples=9),
                    atol=1e-6)
    assert_allclose(samples[:, 0], samples[:, 1], atol=1e-6)  # rows share the masks
    net.set_params(inference_batch_size=7)
    assert_allclose(net.predict_proba_samples(X, n_samples=9), samples, atol=1e-6)
    assert samples.std(axis=0).max() > 0.01  # the passes differ



class _TwoTowers(nn.Module):
    """Dropout on two parallel branches: once the first repeats its rows for the passes,
    the second sees them unrepeated, so only running the network once per pass is right."""

    def __init__(self):
        super().__init__()
        self.fa, self.fb = nn.Linear(10, 8), nn.Linear(10, 8)
        self.da, self.db = nn.Dropout(0.5), nn.Dropout(0.5)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        a = self.da(torch.relu(self.fa(x)))
        b = self.db(torch.relu(self.fb(x)))
        return self.head(torch.cat([a, b], 1))


def test_dropout_on_parallel_branches_falls_back_to_one_pass_per_copy():
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 10).astype(np.float32), np.arange(30) % 3
    net = NetClassifier(_TwoTowers, max_epochs=1, random_state=0).fit(X, y)
    samples = net.predict_proba_samples(X, n_samples=5)
    assert_allclose(samples, full_replication(net).predict_proba_samples(X, n_samples=5),
                    atol=1e-6)
    assert samples.std(axis=0).max() > 0.01


def test_uses_are_counted_per_forward_pass_and_any_seed_works():
    module = _ReusedDropout()
    x = torch.randn(4, 64)
    for seed in (0, None):
        with torch.inference_mode(), ConsistentMCDropout(module, 3, seed=seed) as mc:
            first = module(x)  # before use_passes: pass 0 for every row
            assert_allclose(module(x), first)
            mc.use_passes(1, 3, 4)
            repeated = module(x.repeat(2, 1))
            assert_allclose(module(x.repeat(2, 1)), repeated)  # the same two networks again
            mc.use_passes(0, 1, 4)
            assert_allclose(module(x), first)

class _SequenceFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 8)  # batch_first=False: (sequence, rows, features)
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x.reshape(-1, 6, 4).transpose(0, 1))
        return self.head(self.dropout(out)[-1])


def test_dropout_on_sequence_first_tensors_is_an_error_naming_the_way_out():
    rng = np.random.RandomState(0)
    X, y = rng.randn(20, 24).astype(np.float32), np.arange(20) % 3
    net = NetClassifier(_SequenceFirst, max_epochs=1, random_state=0).fit(X, y)
    for n_samples in (1, 5):
        with pytest.raises(ValueError, match="rows on dimension 0.*batch_first=True"):
            net.predict_proba_samples(X, n_samples=n_samples)


class _InPlaceOnInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.activation = nn.ReLU(inplace=True)
        self.body = nn.Sequential(nn.Linear(10, 8), nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(self.activation(x))


def test_the_callers_rows_are_never_written_and_may_be_strided():
    rng = np.random.RandomState(0)
    X, y = rng.randn(30, 10).astype(np.float32), np.arange(30) % 3
    net = NetClassifier(_InPlaceOnInput, max_epochs=1, random_state=0).fit(X.copy(), y)
    original = X.copy()
    samples = net.predict_proba_samples(X, n_samples=4)
    proba = net.predict_proba(X)
    assert_array_equal(X, original)
    reversed_rows = X[::-1]  # negative strides
    assert_allclose(net.predict_proba_samples(reversed_rows, n_samples=4), samples[:, ::-1],
                    atol=1e-6)
    assert_allclose(net.predict_proba(reversed_rows), proba[::-1], atol=1e-6)

# ---------------------------------------------------------------------- embeddings and modules
def test_transform_is_the_penultimate_layer(fitted, blobs):
    X, _ = blobs
    embedding = fitted.transform(X)
    assert embedding.shape == (X.shape[0], 32)
    logits = embedding @ fitted.module_.output.weight.detach().numpy().T
    logits += fitted.module_.output.bias.detach().numpy()
    assert_allclose(torch.softmax(torch.from_numpy(logits), -1).numpy(),
                    fitted.predict_proba(X), atol=1e-5)


def test_mnist_cnn_takes_flat_rows_and_images():
    rng = np.random.RandomState(0)
    X = rng.rand(24, 784).astype(np.float32)
    y = np.arange(24) % 4
    net = NetClassifier(MNISTConvNet, max_epochs=1, random_state=0, n_samples=3).fit(X, y)
    assert net.module_.output.out_features == 4
    samples = net.predict_proba_samples(np.repeat(X[:1], 3, axis=0))
    assert samples.shape == (3, 3, 4)
    assert_array_equal(samples, np.broadcast_to(samples[:, :1], samples.shape))
    assert net.transform(X).shape == (24, 128)
    images = NetClassifier(MNISTConvNet, max_epochs=1, random_state=0).fit(
        X.reshape(-1, 1, 28, 28), y
    )
    assert_allclose(images.predict_proba(X.reshape(-1, 1, 28, 28)), net.predict_proba(X),
                    atol=1e-5)
    with pytest.raises(ValueError, match="784 features"):
        MNISTConvNet(n_features=100)


# ---------------------------------------------------------------------- inside skal's learners
@pytest.mark.parametrize("update", ["warm_start", "refit"])
def test_active_learner_with_mc_dropout(digits, update):
    X, y = digits
    learner = ActiveLearner(
        tiny_net(module__hidden_units=(32,), n_samples=8),
        KLDivergence(random_state=0),
        budget=60,
        n_initial=20,
        batch_size=20,
        update=update,
        random_state=0,
    ).fit(X[:600], y[:600])
    assert learner.n_labels_ == 60
    assert learner.estimator_.warm_start == (update == "warm_start")
    assert learner.score(X[1000:], y[1000:]) > 0.5
    assert learner.predict_proba_samples(X[:7]).shape == (8, 7, 10)
    assert learner.transform(X[:7]).shape == (7, 32)
    idx = learner.query(X[600:900], 5)
    assert np.unique(idx).size == 5


def test_deep_ensemble_committee(digits):
    X, y = digits
    committee = CommitteeLearner(
        tiny_net(module__hidden_units=(32,), random_state=None),
        n_estimators=3,
        bootstrap=False,
        budget=40,
        n_initial=20,
        random_state=0,
    ).fit(X[:500], y[:500])
    seeds = {member.random_state for member in committee.estimators_}
    assert len(seeds) == 3
    samples = committee.predict_proba_samples(X[:9])
    # 40 labels need not cover all ten digits; one column per class labelled.
    assert samples.shape == (3, 9, committee.classes_.size)
    assert not np.allclose(samples[0], samples[1])
    # The same strategy that reads MC-dropout samples reads the ensemble's.
    assert KLDivergence().score(committee, X[500:600]).shape == (100,)


def test_pipeline_and_grid_search(digits):
    X, y = digits
    pipe = make_pipeline(
        StandardScaler(),
        ActiveLearner(tiny_net(), KLDivergence(), budget=40, n_initial=20, random_state=0),
    ).fit(X[:400], y[:400])
    assert pipe.predict_proba(X[:3]).shape == (3, pipe[-1].classes_.size)
    assert make_pipeline(StandardScaler(), tiny_net()).fit(X[:200], y[:200]).transform(
        X[:3]).shape == (3, 16)
    search = GridSearchCV(
        ActiveLearner(tiny_net(max_epochs=5), KLDivergence(), budget=40, n_initial=20,
                      update="warm_start", random_state=0),
        {"estimator__module__hidden_units": [(8,), (24,)], "estimator__lr": [0.01, 0.03]},
        cv=2,
    ).fit(X[:300], y[:300])
    assert set(search.best_params_) == {"estimator__module__hidden_units", "estimator__lr"}
    best = search.best_estimator_.estimator_
    assert best.module_.output.in_features == search.best_params_[
        "estimator__module__hidden_units"][0]


def test_clean_run_gives_no_warnings(blobs):
    X, y = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = tiny_net().fit(X, y)
        net.predict_proba_samples(X)
        net.transform(X)


# ---------------------------------------------------------------------- divergence and tags
def overflowing(X):
    """Finite float32 inputs close to float32's largest value: the first layer overflows."""
    return (X / np.abs(X).max() * 3e38).astype(np.float32)


def poison(module):
    with torch.no_grad():
        next(module.parameters()).view(-1)[0] = float("nan")


class PoisonWeights(Callback):
    """Simulates a fault: the weights turn NaN in epoch ``epoch`` at ``hook``."""

    def __init__(self, epoch=1, hook="on_epoch_begin"):
        self.epoch = epoch
        self.hook = hook

    def _maybe_poison(self, net, hook):
        if hook == self.hook and len(net.history) == self.epoch:
            poison(net.module_)

    def on_epoch_begin(self, net, **kwargs):
        self._maybe_poison(net, "on_epoch_begin")

    def on_batch_end(self, net, training=None, **kwargs):
        if training:
            self._maybe_poison(net, "on_batch_end")


# sklearn's finiteness check sums X first; on these inputs the sum overflows, harmlessly.
huge_sums = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")


@huge_sums
def test_diverged_training_is_an_error_naming_epoch_and_way_out(blobs):
    X, y = blobs
    with pytest.raises(TrainingDivergedError, match=r"loss became (nan|inf) at epoch 1") as error:
        tiny_net().fit(overflowing(X), y)
    assert isinstance(error.value, ValueError) and error.value.epoch == 1
    assert "Scale the inputs" in str(error.value) and "(lr)" in str(error.value)
    # Through a learner too: no NaN model ever gets to answer queries.
    with pytest.raises(TrainingDivergedError):
        ActiveLearner(tiny_net()).fit(overflowing(X), y)


@pytest.mark.parametrize(
    "hook, epoch, what",
    # Poisoned before epoch 3's step: its loss is NaN. Poisoned after epoch 2's only step:
    # its loss was finite, its weights are not.
    [("on_epoch_begin", 3, "training loss"), ("on_batch_end", 2, "weights")],
)
def test_divergence_names_the_first_bad_epoch_and_stops_there(blobs, hook, epoch, what):
    X, y = blobs
    net = tiny_net(batch_size=len(X), callbacks=[PoisonWeights(epoch, hook)])
    with pytest.raises(TrainingDivergedError, match=f"{what}.* at epoch {epoch}") as error:
        net.fit(X, y)
    assert error.value.epoch == epoch
    assert len(net.history) == epoch < net.max_epochs


@huge_sums
def test_inference_never_returns_non_finite_values(blobs):
    X, y = blobs
    # With the check turned off, training that turns the weights NaN runs to the end; the
    # network must not pass NaN off as probabilities (nor argmax them into class 0).
    diverged = tiny_net(
        callbacks=[PoisonWeights(2)], callbacks__divergence_check=None
    ).fit(X, y)
    assert len(diverged.history) == diverged.max_epochs
    for method in ("predict_proba", "predict", "predict_proba_samples", "transform"):
        with pytest.raises(ValueError, match="non-finite .*weights are non-finite"):
            getattr(diverged, method)(X)
    # Finite weights, inputs that overflow: +inf and 0 logits make softmax NaN.
    net = tiny_net(module=nn.Sequential(nn.Linear(2, 2))).fit(X[:, :2], y % 2)
    with torch.no_grad():
        net.module_[0].weight.copy_(torch.tensor([[1.0, 1.0], [1.0, -1.0]]))
    X_big = np.array([[1.0, 2.0], [3e38, 3e38]], dtype=np.float32)
    with pytest.raises(ValueError, match="for 1 of 2 rows .*row 1.*Scale the inputs"):
        net.predict_proba(X_big)
    assert np.isfinite(net.predict_proba(X_big[:1])).all()


def test_tags_match_what_the_net_accepts(blobs):
    import scipy.sparse as sp

    X, y = blobs
    tags = get_tags(tiny_net())
    assert not tags.input_tags.sparse and not tags.input_tags.allow_nan
    with pytest.raises(TypeError, match="dense data is required"):
        tiny_net().fit(sp.csr_matrix(X), y)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tiny_net().fit(X_nan, y)
    assert tags.transformer_tags.preserves_dtype == ["float32"]
    assert tiny_net().fit(X.astype(np.float64), y).transform(X).dtype == np.float32


# ---------------------------------------------------------------------- CUDA
@cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_samples_match_cpu(blobs):
    X, y = blobs
    gpu = tiny_net(device="cuda").fit(X, y)
    assert next(gpu.module_.parameters()).is_cuda
    samples = gpu.predict_proba_samples(X, n_samples=6)
    assert isinstance(samples, np.ndarray)
    cpu = pickle.loads(pickle.dumps(gpu))
    cpu.module_.to("cpu")
    # Masks are drawn on the CPU from the seed, so both devices sample the same networks.
    assert_allclose(cpu.predict_proba_samples(X, n_samples=6), samples, atol=1e-4)


@cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("kind", [None, "add"])
def test_cuda_shared_prefix_and_fallback_match_full_replication(blobs, kind):
    X, y = blobs
    module = TinyMLP if kind is None else _Skip(kind)
    net = tiny_net(module=module, device="cuda").fit(X, y)
    samples, seen = sampling_rows(net, X, 6)
    reference = full_replication(net).predict_proba_samples(X, n_samples=6)
    assert_allclose(samples, reference, atol=1e-5)
    assert seen[-1] == ((X.shape[0] if kind is None else 6 * X.shape[0]), 6 * X.shape[0])


@cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_mixed_convolution_matches_replication_and_the_cpu():
    rng = np.random.RandomState(0)
    X = rng.rand(50, 784).astype(np.float32)
    y = np.arange(50) % 4
    gpu = NetClassifier(MNISTConvNet, max_epochs=1, random_state=0, device="cuda",
                        inference_batch_size=256).fit(X, y)
    _, seen_conv = layouts_and_conv_rows(gpu.module_, torch.from_numpy(X[:6]).cuda(), 40,
                                         gpu.module_.features[4])
    assert seen_conv == [(6, 240)]
    samples = gpu.predict_proba_samples(X, n_samples=40)
    assert_allclose(full_replication(gpu).predict_proba_samples(X, n_samples=40), samples,
                    atol=1e-5)
    cpu = pickle.loads(pickle.dumps(gpu))
    cpu.module_.to("cpu")
    assert_allclose(cpu.predict_proba_samples(X, n_samples=40), samples, atol=1e-4)


@cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_auto_device_and_global_rng(blobs):
    X, y = blobs
    state = torch.cuda.get_rng_state()
    net = tiny_net().fit(X, y)
    assert next(net.module_.parameters()).is_cuda
    assert torch.equal(torch.cuda.get_rng_state(), state)
    assert net.transform(X).dtype == np.float32


def test_validation_split_scoring_works():
    # skorch scores a validation split by calling predict on its own Dataset.
    from skorch.dataset import Dataset
    from skorch.helper import predefined_split

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype(np.float32)
    valid = predefined_split(Dataset(X[1000:1100], y[1000:1100]))
    net = NetClassifier(max_epochs=2, train_split=valid, random_state=0).fit(X[:150], y[:150])
    assert 0.0 <= net.history[-1, "valid_acc"] <= 1.0


# ---------------------------------------------------------------------- training batches
def _weights(net):
    return [p.detach().clone() for p in net.module_.parameters()]


@pytest.mark.parametrize("with_validation", [False, True])
def test_tensor_batches_train_the_same_weights_as_the_data_loader(blobs, with_validation):
    # Batches cut from whole tensors must be the DataLoader's batches, in its order, with
    # the same draws from torch's generator (dropout masks follow them), epoch after epoch.
    from skorch.dataset import ValidSplit

    X, y = blobs
    params = dict(module__dropout=0.5, max_epochs=4, batch_size=16)
    if with_validation:
        params["train_split"] = ValidSplit(4, stratified=False)
    fast, slow = tiny_net(**params), tiny_net(**params)
    slow._fast_batches = False
    fast.fit(X, y)
    slow.fit(X, y)
    for a, b in zip(_weights(fast), _weights(slow), strict=True):
        assert torch.equal(a, b)
    assert fast.history[:, "train_loss"] == slow.history[:, "train_loss"]
    if with_validation:
        assert fast.history[:, "valid_loss"] == slow.history[:, "valid_loss"]


def test_tensor_batches_only_for_plain_in_memory_loaders(blobs):
    from skorch.dataset import Dataset

    from skal.nets._base import _TensorBatches

    X, y = blobs
    net = tiny_net(max_epochs=1).fit(X, y)
    batches = net.get_iterator(Dataset(X, y), training=True)
    assert isinstance(batches, _TensorBatches) and len(batches) == 4
    assert sum(len(xb) for xb, _ in batches) == len(X)

    class Shifted(Dataset):
        def transform(self, X, y):
            return X + 1, y

    assert not isinstance(net.get_iterator(Shifted(X, y), training=True), _TensorBatches)
    workers = tiny_net(iterator_train__num_workers=1)
    assert not isinstance(workers.get_iterator(Dataset(X, y), training=True), _TensorBatches)
    read_only = X.copy()
    read_only.flags.writeable = False
    assert not isinstance(net.get_iterator(Dataset(read_only, y), training=True), _TensorBatches)
