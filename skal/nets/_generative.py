"""A small GAN fitted on the unlabelled pool, the generator that query synthesis (GAAL, ASAL)
searches for samples near a classifier's decision boundary."""

import numbers

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from skal.nets._base import _MAX_SEED, resolve_device


def _mlp(sizes, last):
    """Linear layers of ``sizes`` with LeakyReLU between them and ``last`` after the output.

    No batch normalisation: an AL pool may hold a single row, and BatchNorm cannot train on a
    batch of one.
    """
    layers = []
    for width_in, width_out in zip(sizes[:-2], sizes[1:-1], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.LeakyReLU(0.2)]
    layers.append(nn.Linear(sizes[-2], sizes[-1]))
    if last is not None:
        layers.append(last)
    return nn.Sequential(*layers)


class PoolGAN(BaseEstimator):
    """A small generative adversarial network fitted on the rows of a pool (no labels).

    Generator ``G: z -> x`` and discriminator ``D: x -> logit`` are multi-layer perceptrons
    (LeakyReLU hidden layers, ``tanh`` output for ``G``), trained with the non-saturating GAN
    loss of Goodfellow et al. (2014) and Adam (``betas=(0.5, 0.999)``, as DCGAN). Features
    are scaled to ``[-1, 1]`` column by column with the pool's minimum and maximum (a column
    without spread is left at its value), so generated rows stay inside the pool's range.
    Rows of more than one dimension (images ``(n, 1, 28, 28)``) are flattened for the
    networks and generated in their shape.

    GAAL (Zhu & Bento 2017) used a DCGAN (convolutional) generator; this MLP is the
    small, CPU-friendly stand-in for tabular and small-image pools. A poorly trained
    generator produces abnormal samples (the survey's warning for GAAL): look at
    :meth:`sample` before asking a person to label synthesised rows.

    Parameters
    ----------
    latent_dim : int, default=16
        Dimension of the latent code ``z ~ N(0, I)``.
    hidden_units : tuple of int, default=(128, 128)
        Widths of the hidden layers of both networks (the discriminator's in reverse).
    max_epochs : int, default=100
        Passes over the pool.
    batch_size : int, default=64
        Rows per update.
    lr : float, default=2e-4
        Adam's learning rate for both networks.
    device : str, default="cpu"
        Torch device; ``"auto"`` is CUDA when available.
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, the batches and the noise. Torch is seeded inside
        ``torch.random.fork_rng``, so the global random state is untouched; the same seed
        gives the same generator (on the CPU).

    Attributes
    ----------
    generator_ : torch.nn.Module
        The trained generator (evaluation mode).
    discriminator_ : torch.nn.Module
    n_features_in_ : int
    history_ : list of dict
        The mean discriminator and generator losses per epoch.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skal.nets import PoolGAN
    >>> X = load_digits().data[:200]
    >>> gan = PoolGAN(max_epochs=2, random_state=0).fit(X)
    >>> gan.sample(3, random_state=0).shape
    (3, 64)
    """

    _parameter_constraints = {
        "latent_dim": [Interval(numbers.Integral, 1, None, closed="left")],
        "hidden_units": [tuple, list],
        "max_epochs": [Interval(numbers.Integral, 1, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "lr": [Interval(numbers.Real, 0, None, closed="neither")],
        "device": [str, None],
        "random_state": ["random_state"],
    }

    def __init__(self, latent_dim=16, hidden_units=(128, 128), max_epochs=100, batch_size=64,
                 lr=2e-4, device="cpu", random_state=None):
        self.latent_dim = latent_dim
        self.hidden_units = hidden_units
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.device = device
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags

    def fit(self, X, y=None):
        """Train the GAN on the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
        y : None
            Ignored.

        Returns
        -------
        self : object
        """
        self._validate_params()
        if any(isinstance(u, bool) or not isinstance(u, numbers.Integral) or u < 1
               for u in self.hidden_units):
            raise ValueError(
                f"hidden_units must hold positive integers, got {self.hidden_units!r}."
            )
        X = validate_data(self, X, dtype=np.float32, allow_nd=True, reset=True)
        self._row_shape = X.shape[1:]
        flat = X.reshape(X.shape[0], -1).astype(np.float64)
        low, high = flat.min(axis=0), flat.max(axis=0)
        spread = high - low
        # (x - centre) / half-range maps the pool onto [-1, 1]; a constant column maps to 0,
        # and a half-range of 0 generates it constant.
        self._centre = ((high + low) / 2).astype(np.float32)
        self._half_range = (spread / 2).astype(np.float32)
        scaled = ((flat - self._centre) / np.where(spread > 0, spread / 2, 1.0)).astype(
            np.float32)
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(_MAX_SEED))
        device = resolve_device(self.device)
        devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            self._train(torch.as_tensor(scaled, device=device), rng, device)
        return self

    def _train(self, data, rng, device):
        n, d = data.shape
        hidden = [int(u) for u in self.hidden_units]
        self.generator_ = _mlp([self.latent_dim, *hidden, d], nn.Tanh()).to(device)
        self.discriminator_ = _mlp([d, *hidden[::-1], 1], None).to(device)
        opt_g = torch.optim.Adam(self.generator_.parameters(), lr=self.lr, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(self.discriminator_.parameters(), lr=self.lr,
                                 betas=(0.5, 0.999))
        loss = nn.BCEWithLogitsLoss()
        batch = min(int(self.batch_size), n)
        self.history_ = []
        for _ in range(self.max_epochs):
            order = torch.as_tensor(rng.permutation(n), device=device)
            sums = np.zeros(2)
            n_batches = 0
            for start in range(0, n, batch):
                real = data[order[start:start + batch]]
                m = real.shape[0]
                z = torch.as_tensor(rng.standard_normal((m, self.latent_dim)),
                                    dtype=torch.float32, device=device)
                fake = self.generator_(z)
                ones = torch.ones(m, 1, device=device)
                zeros = torch.zeros(m, 1, device=device)
                opt_d.zero_grad()
                d_loss = loss(self.discriminator_(real), ones) + loss(
                    self.discriminator_(fake.detach()), zeros)
                d_loss.backward()
                opt_d.step()
                opt_g.zero_grad()
                g_loss = loss(self.discriminator_(fake), ones)  # non-saturating
                g_loss.backward()
                opt_g.step()
                sums += (d_loss.item(), g_loss.item())
                n_batches += 1
            if not np.isfinite(sums).all():
                raise ValueError(
                    "PoolGAN's training diverged (non-finite losses). Lower lr, or scale "
                    "the features (e.g. StandardScaler) before fitting."
                )
            d_mean, g_mean = sums / n_batches
            self.history_.append({"d_loss": d_mean, "g_loss": g_mean})
        self.generator_.eval()
        self.discriminator_.eval()

    @property
    def latent_dim_(self):
        """The latent dimension of the fitted generator."""
        check_is_fitted(self)
        return self.generator_[0].in_features

    def sample_latent(self, n_samples, random_state=None):
        """Draw latent codes from the prior ``N(0, I)``.

        Parameters
        ----------
        n_samples : int
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        Z : ndarray of shape (n_samples, latent_dim)
        """
        rng = check_random_state(random_state)
        return rng.standard_normal((int(n_samples), self.latent_dim_))

    def generate(self, Z):
        """The rows the generator makes from the latent codes ``Z``.

        Parameters
        ----------
        Z : array-like of shape (n_samples, latent_dim)

        Returns
        -------
        X : ndarray of shape (n_samples, ...), float32
            Rows of the fitted pool's row shape, in its units.
        """
        check_is_fitted(self)
        Z = np.asarray(Z, dtype=np.float32)
        if Z.ndim != 2 or Z.shape[1] != self.latent_dim_:
            raise ValueError(
                f"Z must have shape (n_samples, {self.latent_dim_}), got {Z.shape}."
            )
        device = next(self.generator_.parameters()).device
        with torch.inference_mode():
            out = self.generator_(torch.as_tensor(Z, device=device)).cpu().numpy()
        out = out * self._half_range + self._centre
        return out.reshape(Z.shape[0], *self._row_shape)

    def sample(self, n_samples=1, random_state=None):
        """Generate ``n_samples`` rows from random latent codes.

        Parameters
        ----------
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=None

        Returns
        -------
        X : ndarray of shape (n_samples, ...), float32
        """
        return self.generate(self.sample_latent(n_samples, random_state))

    def __sklearn_is_fitted__(self):
        return hasattr(self, "generator_")
