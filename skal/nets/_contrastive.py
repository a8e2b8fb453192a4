"""Self-supervised representations for active learning: a SimCLR-style contrastive encoder
(NT-Xent / InfoNCE on two augmented views) pretrained on the unlabelled pool, digit-image
augmentations done on whole batches in torch, and a classifier module that fine-tunes the
pretrained encoder with :class:`~skal.nets.NetClassifier`."""

import copy
import numbers

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils._tags import TransformerTags
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from skal.nets._base import check_positive_int, resolve_device

_MAX_SEED = np.iinfo(np.int32).max


# ---------------------------------------------------------------------------- the loss
def nt_xent_loss(z1, z2, temperature=0.5):
    """NT-Xent, SimCLR's InfoNCE loss over a batch of positive pairs ``(z1[i], z2[i])``.

    The ``2N`` projections are L2-normalised; for anchor ``a`` with positive ``p(a)`` the loss
    is ``-log( exp(s(a, p(a)) / t) / sum_{b != a} exp(s(a, b) / t) )`` with ``s`` the cosine
    similarity and ``t`` the temperature, averaged over all ``2N`` anchors: each view is
    classified against its partner among the other ``2N - 1`` views of the batch.

    Parameters
    ----------
    z1, z2 : torch.Tensor of shape (n, d)
        Projections of the two views; row ``i`` of each comes from the same image.
    temperature : float, default=0.5

    Returns
    -------
    loss : torch.Tensor, scalar
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))  # an anchor is never its own negative
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partner)


# ---------------------------------------------------------------------------- augmentations
class DigitAugment:
    """Random views of greyscale digit images, drawn for a whole batch at once.

    Each image gets its own random affine map (rotation, isotropic scale as a random resized
    crop, shift) applied with one ``affine_grid``/``grid_sample`` call for the batch, then
    Gaussian pixel noise; values are clipped to ``[0, 1]``, so the inputs should be scaled to
    ``[0, 1]`` (MNIST ``/ 255``, ``load_digits`` ``/ 16``). Parameters are drawn on the CPU
    from the given generator and moved to the images' device, so a seed gives the same views
    on every device.

    Parameters
    ----------
    rotation : float, default=15
        Largest rotation, in degrees.
    scale : tuple of float, default=(0.85, 1.15)
        Range of the zoom factor (above 1 crops, below 1 shrinks).
    shift : float, default=0.1
        Largest shift, as a fraction of the image side.
    noise : float, default=0.1
        Standard deviation of the additive Gaussian noise.

    Examples
    --------
    >>> import torch
    >>> from skal.nets import DigitAugment
    >>> views = DigitAugment()(torch.rand(4, 1, 28, 28), torch.Generator().manual_seed(0))
    >>> tuple(views.shape)
    (4, 1, 28, 28)
    """

    def __init__(self, rotation=15.0, scale=(0.85, 1.15), shift=0.1, noise=0.1):
        self.rotation = rotation
        self.scale = scale
        self.shift = shift
        self.noise = noise

    @classmethod
    def for_shape(cls, image_shape):
        """Presets: MNIST-like 28x28 digits, or milder ones for 8x8 ``load_digits`` images."""
        if min(image_shape[-2:]) <= 12:
            # One pixel is an eighth of the image: small rotations and one-pixel shifts.
            return cls(rotation=10.0, scale=(0.9, 1.1), shift=0.125, noise=0.05)
        return cls()

    def __call__(self, images, generator):
        n = images.shape[0]

        def uniform(low, high):
            return low + (high - low) * torch.rand(n, generator=generator)

        angle = torch.deg2rad(uniform(-self.rotation, self.rotation))
        zoom = uniform(*self.scale)
        # affine_grid maps output to input coordinates in [-1, 1]: shrink by 1 / zoom.
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        shift = 2.0 * self.shift
        theta = torch.stack([
            torch.stack([cos, -sin, uniform(-shift, shift)], dim=1),
            torch.stack([sin, cos, uniform(-shift, shift)], dim=1),
        ], dim=1)
        noise = torch.randn(images.shape, generator=generator) * self.noise
        theta = theta.to(images.device, images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        views = F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
        return (views + noise.to(images.device, images.dtype)).clamp_(0.0, 1.0)


# ---------------------------------------------------------------------------- modules
class ConvEncoder(nn.Module):
    """A small convolutional encoder for greyscale images (28x28 or 8x8 digits).

    ``conv 3x3 (c1) -> BN -> ReLU [-> maxpool 2 when the side is >= 16] -> conv 3x3 (c2) ->
    BN -> ReLU -> maxpool 2 -> linear (n_components)``. Input rows may be flat.

    Parameters
    ----------
    image_shape : tuple of int, default=(1, 28, 28)
        ``(channels, height, width)``.
    n_components : int, default=128
        Width of the embedding.
    channels : tuple of two int, default=(32, 64)
        Channels ``(c1, c2)`` of the two convolutions.
    """

    def __init__(self, image_shape=(1, 28, 28), n_components=128, channels=(32, 64)):
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        in_channels, height, width = self.image_shape
        c1, c2 = (int(c) for c in channels)
        layers = [nn.Conv2d(in_channels, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU()]
        if min(height, width) >= 16:
            layers.append(nn.MaxPool2d(2))
            height, width = height // 2, width // 2
        layers += [nn.Conv2d(c1, c2, 3, padding=1), nn.BatchNorm2d(c2), nn.ReLU(),
                   nn.MaxPool2d(2), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.linear = nn.Linear(c2 * (height // 2) * (width // 2), int(n_components))
        self.n_components = int(n_components)

    def forward(self, x):
        return self.linear(self.features(x.reshape(-1, *self.image_shape)))


class EncoderClassifier(nn.Module):
    """A pretrained encoder with a linear head: the module for fine-tuning with
    :class:`~skal.nets.NetClassifier` (``module=EncoderClassifier, module__encoder=...``).

    The forward pass is ``linear(dropout(relu(encoder(x))))`` and gives logits; ``embed`` is
    the encoder's output, so ``NetClassifier.transform`` and the geometric strategies see
    the fine-tuned representation. The encoder given is deep-copied, so every fit (and every
    clone an active learner makes) starts from the pretrained weights.

    Parameters
    ----------
    encoder : torch.nn.Module
        E.g. ``ContrastiveEncoder(...).fit(X_pool).encoder_``; its output is ``(n, d)``.
    n_classes : int, default=None
        Filled in by :class:`~skal.nets.NetClassifier` from ``y``.
    n_features : int, default=None
        Unused; accepted so that NetClassifier can pass it.
    dropout : float, default=0.5
        Before the head; it also makes MC-dropout posterior samples possible.
    """

    def __init__(self, encoder, n_classes=None, n_features=None, dropout=0.5):
        super().__init__()
        if not isinstance(encoder, nn.Module):
            raise TypeError(
                f"encoder must be a torch.nn.Module (e.g. a fitted ContrastiveEncoder's "
                f"encoder_), got {type(encoder).__name__}."
            )
        if n_classes is None:
            raise ValueError("n_classes is None: build the module through NetClassifier.")
        self.encoder = copy.deepcopy(encoder)
        width = getattr(encoder, "n_components", None) or _output_width(encoder)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(width, int(n_classes))

    def embed(self, x):
        """The encoder's features."""
        return self.encoder(x)

    def forward(self, x):
        return self.output(self.dropout(F.relu(self.embed(x))))


def _output_width(encoder):
    linear = [m for m in encoder.modules() if isinstance(m, nn.Linear)]
    if not linear:
        raise TypeError(
            f"Cannot tell the output width of {type(encoder).__name__}: give it an "
            "n_components attribute."
        )
    return linear[-1].out_features


# ---------------------------------------------------------------------------- the estimator
class ContrastiveEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """SimCLR-style self-supervised encoder: ``fit`` on the unlabelled pool, ``transform``
    to embeddings.

    Each training step takes a batch of images, draws two augmented views of each
    (``augment``), encodes them, maps the codes through a projection head
    (``linear -> ReLU -> linear``) and minimises NT-Xent (:func:`nt_xent_loss`, the InfoNCE
    loss of Chen et al. 2020) at ``temperature``. After training the projection head is
    discarded, as in SimCLR: ``transform`` returns the encoder's output, which keeps more
    information than the projection. ``y`` is ignored, so the encoder can be fitted on every
    row of the pool.

    A plain torch loop, not skorch: a step needs two random views of each batch and a loss
    over all pairs of the batch, with no targets; skorch's loop (one forward per ``(X, y)``
    batch, label handling, predict) would be overridden at every point that matters, and
    the views are drawn from a seeded generator of our own.

    Reusing a fitted encoder in an active-learning loop: pretraining costs minutes, the
    head seconds. An active learner clones and refits its estimator at every cycle, and a
    supervised head is fitted on the labelled rows only, so an encoder in the Pipeline would
    be retrained every cycle, on a few dozen rows. Pretrain once on the pool and wrap the
    fitted encoder in :class:`sklearn.frozen.FrozenEstimator`, which ``clone`` returns
    unchanged and whose ``fit`` does nothing::

        encoder = FrozenEstimator(ContrastiveEncoder(random_state=0).fit(X_pool))
        learner = ActiveLearner(make_pipeline(encoder, LogisticRegression()), TypiClust())

    A Pipeline's ``memory=`` does not help here: its cache key includes ``y`` and the rows
    the head sees, which change every cycle.

    Parameters
    ----------
    module : torch.nn.Module class or instance, default=None
        The encoder, mapping images ``(n, *image_shape)`` or flat rows to ``(n, d)``. A
        class is built with ``image_shape`` and ``n_components`` when it accepts them; an
        instance is deep-copied. ``None`` is :class:`ConvEncoder`.
    image_shape : tuple of int or None, default=None
        ``(channels, height, width)``; ``None`` infers square greyscale images from the
        number of features (784 -> ``(1, 28, 28)``, 64 -> ``(1, 8, 8)``) or takes the shape
        of 3-d/4-d input.
    n_components : int, default=128
        Width of the embedding (of the default module).
    projection_dim : int, default=64
        Output width of the projection head.
    augment : callable or None, default=None
        ``augment(images, generator) -> views`` on a batch tensor ``(n, c, h, w)``;
        ``None`` is :meth:`DigitAugment.for_shape` of the image shape.
    temperature : float, default=0.5
    max_epochs : int, default=20
    batch_size : int, default=256
        Images per step (``2 x batch_size`` views); more negatives help SimCLR.
    lr : float, default=1e-3
        Adam's step size.
    weight_decay : float, default=1e-6
    device : str or torch.device, default="auto"
        ``"auto"`` is CUDA when available, else the CPU. The same code runs on both.
    inference_batch_size : int, default=2048
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, batch order and views inside :func:`torch.random.fork_rng`; the
        global random state is untouched and a refit with the same int gives the same
        encoder (on one device).

    Attributes
    ----------
    encoder_ : torch.nn.Module
        The trained encoder, in evaluation mode, on ``device``.
    loss_curve_ : list of float
        Mean NT-Xent loss of every epoch.
    image_shape_ : tuple of int
    n_components_ : int
        Width of the embedding.
    n_features_in_ : int

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skal.nets import ContrastiveEncoder
    >>> X = load_digits().data[:200] / 16
    >>> encoder = ContrastiveEncoder(n_components=16, max_epochs=1, random_state=0).fit(X)
    >>> encoder.transform(X[:5]).shape
    (5, 16)
    """

    def __init__(self, module=None, *, image_shape=None, n_components=128, projection_dim=64,
                 augment=None, temperature=0.5, max_epochs=20, batch_size=256, lr=1e-3,
                 weight_decay=1e-6, device="auto", inference_batch_size=2048,
                 random_state=None):
        self.module = module
        self.image_shape = image_shape
        self.n_components = n_components
        self.projection_dim = projection_dim
        self.augment = augment
        self.temperature = temperature
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.device = device
        self.inference_batch_size = inference_batch_size
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=["float32"])
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags

    @property
    def _n_features_out(self):
        return self.n_components_

    # ------------------------------------------------------------------ fit
    def fit(self, X, y=None):
        """Pretrain the encoder on the rows of ``X`` (``y`` is ignored).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)
            Images scaled to ``[0, 1]``.
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        X = validate_data(self, X, dtype=np.float32, allow_nd=True, ensure_min_samples=2)
        self.image_shape_ = self._resolve_image_shape(X)
        temperature = self.temperature
        if not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {temperature!r}.")
        max_epochs = check_positive_int(self.max_epochs, "max_epochs")
        batch_size = min(check_positive_int(self.batch_size, "batch_size"), X.shape[0])
        augment = self.augment or DigitAugment.for_shape(self.image_shape_)
        if not callable(augment):
            raise TypeError(f"augment must be callable(images, generator), got {augment!r}.")
        device = torch.device(resolve_device(self.device))
        seed = int(check_random_state(self.random_state).randint(_MAX_SEED))
        images = torch.from_numpy(np.ascontiguousarray(X)).reshape(-1, *self.image_shape_)
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            encoder = self._build_module().to(device)
            width = self._embedding_width(encoder, images[:2].to(device))
            head = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                 nn.Linear(width, int(self.projection_dim))).to(device)
            optimizer = torch.optim.Adam([*encoder.parameters(), *head.parameters()],
                                         lr=self.lr, weight_decay=self.weight_decay)
            self.loss_curve_ = []
            encoder.train()
            for _ in range(max_epochs):
                order = torch.randperm(images.shape[0], generator=generator)
                total, seen = 0.0, 0
                # the last short batch is dropped: a batch of one has no negatives
                for start in range(0, images.shape[0] - batch_size + 1, batch_size):
                    batch = images[order[start:start + batch_size]].to(device)
                    views = torch.cat([augment(batch, generator), augment(batch, generator)])
                    z = head(encoder(views))
                    loss = nt_xent_loss(z[:batch.shape[0]], z[batch.shape[0]:], temperature)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += float(loss.detach()) * batch.shape[0]
                    seen += batch.shape[0]
                if not np.isfinite(total):
                    raise ValueError(
                        f"The contrastive loss became non-finite at epoch "
                        f"{len(self.loss_curve_) + 1}; lower lr or raise temperature."
                    )
                self.loss_curve_.append(total / seen)
        self.encoder_ = encoder.eval()
        self.n_components_ = width
        return self

    def _resolve_image_shape(self, X):
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if int(np.prod(shape)) != int(np.prod(X.shape[1:])):
                raise ValueError(
                    f"image_shape={shape} has {int(np.prod(shape))} values but rows of X have "
                    f"{int(np.prod(X.shape[1:]))}."
                )
            return shape
        if X.ndim == 4:
            return tuple(X.shape[1:])
        if X.ndim == 3:
            return (1, *X.shape[1:])
        side = int(round(np.sqrt(X.shape[1])))
        if side * side != X.shape[1]:
            raise ValueError(
                f"Rows of {X.shape[1]} features are not square greyscale images; pass "
                "image_shape=(channels, height, width)."
            )
        return (1, side, side)

    def _build_module(self):
        module = ConvEncoder if self.module is None else self.module
        if isinstance(module, nn.Module):
            return copy.deepcopy(module)
        import inspect

        try:
            accepted = inspect.signature(module).parameters
        except (TypeError, ValueError):
            accepted = {}
        kwargs = {}
        if "image_shape" in accepted:
            kwargs["image_shape"] = self.image_shape_
        if "n_components" in accepted:
            kwargs["n_components"] = self.n_components
        return module(**kwargs)

    @staticmethod
    def _embedding_width(encoder, sample):
        was_training = encoder.training
        encoder.eval()
        with torch.no_grad():
            out = encoder(sample)
        encoder.train(was_training)
        if out.ndim != 2:
            raise ValueError(
                f"The encoder must return (n, d) embeddings, got shape {tuple(out.shape)}."
            )
        return int(out.shape[1])

    # ------------------------------------------------------------------ transform
    def transform(self, X):
        """Embeddings of the rows of ``X`` (the encoder in evaluation mode, no head).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, c, h, w)

        Returns
        -------
        embedding : ndarray of shape (n_samples, n_components), float32
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float32, allow_nd=True, reset=False)
        step = check_positive_int(self.inference_batch_size, "inference_batch_size")
        device = next(self.encoder_.parameters()).device
        out = np.empty((X.shape[0], self.n_components_), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, X.shape[0], step):
                rows = torch.from_numpy(np.ascontiguousarray(X[start:start + step]))
                images = rows.reshape(-1, *self.image_shape_).to(device)
                out[start:start + step] = self.encoder_(images).float().cpu().numpy()
        return out

    def classifier_module(self, dropout=0.5):
        """A :class:`EncoderClassifier` factory's arguments for fine-tuning with NetClassifier.

        Returns
        -------
        params : dict
            ``{"module": EncoderClassifier, "module__encoder": <a CPU copy of encoder_>,
            "module__dropout": dropout}``, to pass as ``NetClassifier(**params, ...)``.
        """
        check_is_fitted(self)
        return {"module": EncoderClassifier,
                "module__encoder": copy.deepcopy(self.encoder_).cpu(),
                "module__dropout": dropout}
