"""Variational adversarial active learning (Sinha, Ebrahimi & Darrell 2019): a VAE and a
discriminator on its latent space, trained adversarially on the labelled and unlabelled rows.

Fully connected networks on flat rows (tabular features or flattened images), or a small
convolutional VAE for 1x28x28 images; the paper's larger VAE for 32x32 and up is not here.
"""

import numbers

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skal.nets._base import resolve_device


def _widths(hidden_units):
    if isinstance(hidden_units, numbers.Integral):
        hidden_units = (hidden_units,)
    widths = tuple(int(units) for units in hidden_units)
    if not widths or min(widths) < 1:
        raise ValueError(f"hidden_units must be positive widths, got {hidden_units!r}.")
    return widths


def _mlp(widths):
    layers = []
    for width_in, width_out in zip(widths[:-2], widths[1:-1], strict=True):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-2], widths[-1]))
    return nn.Sequential(*layers)


class VAE(nn.Module):
    """A fully connected variational autoencoder with a Gaussian latent space.

    Parameters
    ----------
    n_features : int
        Width of the (flat) rows.
    latent_dim : int, default=32
        Dimension of the latent space (the paper's 32 on CIFAR-10).
    hidden_units : int or tuple of int, default=(128,)
        Widths of the encoder's hidden layers; the decoder mirrors them.
    """

    def __init__(self, n_features, latent_dim=32, hidden_units=(128,)):
        super().__init__()
        widths = _widths(hidden_units)
        self.latent_dim = int(latent_dim)
        self.encoder = _mlp((int(n_features), *widths, 2 * self.latent_dim))
        self.decoder = _mlp((self.latent_dim, *widths[::-1], int(n_features)))

    def encode(self, x):
        """Mean and log-variance of ``q(z | x)``, each of shape ``(n, latent_dim)``."""
        mu, logvar = self.encoder(x.flatten(1)).chunk(2, dim=1)
        return mu, logvar

    def forward(self, x):
        """Reconstruction (from a reparameterised draw of ``z`` in training, from the mean
        otherwise), mean and log-variance."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decoder(z), mu, logvar


class ConvVAE(nn.Module):
    """A convolutional VAE for 1x28x28 images (rows of 784 features, or ``(n, 1, 28, 28)``).

    Encoder: conv(1->32, 4x4, stride 2) -> ReLU -> conv(32->64, 4x4, stride 2) -> ReLU ->
    linear to the latent mean and log-variance; the decoder mirrors it with transposed
    convolutions. A smaller cousin of the paper's VAE for 32x32 images; the reconstruction is
    returned flat, as :class:`VAE`'s.

    Parameters
    ----------
    latent_dim : int, default=32
    """

    image_shape = (1, 28, 28)

    def __init__(self, latent_dim=32):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 2 * self.latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(self.latent_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1), nn.Flatten(),
        )

    def encode(self, x):
        """Mean and log-variance of ``q(z | x)``, each of shape ``(n, latent_dim)``."""
        return self.encoder(x.reshape(-1, *self.image_shape)).chunk(2, dim=1)

    forward = VAE.forward


class Discriminator(nn.Module):
    """A fully connected discriminator on the latent space: the logit of "labelled".

    Parameters
    ----------
    latent_dim : int, default=32
    hidden_units : int or tuple of int, default=(128, 128)
    """

    def __init__(self, latent_dim=32, hidden_units=(128, 128)):
        super().__init__()
        self.net = _mlp((int(latent_dim), *_widths(hidden_units), 1))

    def forward(self, z):
        return self.net(z).squeeze(1)


def vae_loss(x, reconstruction, mu, logvar, beta=1.0):
    """The transductive beta-VAE loss of one batch (VAAL's L_trd, the negated ELBO).

    ``mean_rows[ sum_features (x - x^)^2 + beta * KL(N(mu, exp(logvar)) || N(0, I)) ]``
    with ``KL = -1/2 sum_d (1 + logvar_d - mu_d^2 - exp(logvar_d))``. The squared error is
    the negative log-likelihood of a Gaussian decoder (variance 1/2) up to a constant; summed
    over the features, so that wide rows are not left to collapse onto the prior.

    Returns
    -------
    loss : torch.Tensor, scalar
    """
    squared_error = (x.flatten(1) - reconstruction).pow(2).sum(dim=1)
    kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    return (squared_error + beta * kl).mean()


def adversarial_loss(logits_labeled, logits_unlabeled):
    """The VAE's adversarial term: make the discriminator call every row labelled.

    ``-E[log D(z_L)] - E[log D(z_U)]`` (VAAL's L_adv), each expectation a batch mean.
    """
    return (F.binary_cross_entropy_with_logits(logits_labeled, torch.ones_like(logits_labeled))
            + F.binary_cross_entropy_with_logits(logits_unlabeled,
                                                 torch.ones_like(logits_unlabeled)))


def discriminator_loss(logits_labeled, logits_unlabeled):
    """The discriminator's loss: labelled rows are 1, unlabelled rows 0.

    ``-E[log D(z_L)] - E[log(1 - D(z_U))]`` (VAAL's L_D), each expectation a batch mean.
    """
    return (F.binary_cross_entropy_with_logits(logits_labeled, torch.ones_like(logits_labeled))
            + F.binary_cross_entropy_with_logits(logits_unlabeled,
                                                 torch.zeros_like(logits_unlabeled)))


def _standardiser(X_labeled, X_unlabeled):
    both = np.concatenate([X_labeled, X_unlabeled], axis=0)
    mean = both.mean(axis=0, dtype=np.float64)
    scale = both.std(axis=0, dtype=np.float64)
    scale[scale == 0] = 1.0
    return mean.astype(np.float32), scale.astype(np.float32)


class VAALModel:
    """A trained VAE and discriminator, and the standardisation of the rows they saw."""

    def __init__(self, vae, discriminator, mean, scale, device):
        self.vae = vae
        self.discriminator = discriminator
        self.mean = mean
        self.scale = scale
        self.device = device

    def _tensor(self, X):
        return torch.as_tensor((X - self.mean) / self.scale, device=self.device)

    def labeled_probability(self, X, batch_rows=4096):
        """The discriminator's probability that each row is labelled, from the latent mean.

        Parameters
        ----------
        X : ndarray of shape (n, n_features), float32

        Returns
        -------
        proba : ndarray of shape (n,), float64
        """
        self.vae.eval()
        self.discriminator.eval()
        parts = []
        with torch.inference_mode():
            for start in range(0, X.shape[0], batch_rows):
                mu, _ = self.vae.encode(self._tensor(X[start:start + batch_rows]))
                parts.append(torch.sigmoid(self.discriminator(mu)).double().cpu().numpy())
        return np.concatenate(parts) if parts else np.empty(0)


def fit_vaal(X_labeled, X_unlabeled, *, latent_dim=32, hidden_units=(128,), beta=1.0,
             adversary_weight=1.0, max_epochs=30, batch_size=64, lr=5e-4, device="auto",
             architecture="mlp", seed=0):
    """Train a VAE and a discriminator as VAAL does; return a :class:`VAALModel`.

    Each step takes a batch of labelled rows (cycling through them) and a batch of
    unlabelled rows; the VAE takes one Adam step on ``vae_loss(L) + vae_loss(U) +
    adversary_weight * adversarial_loss`` (VAAL's L_VAE with lambda_1 = 1 and lambda_2 =
    ``adversary_weight``), then the discriminator one Adam step on
    :func:`discriminator_loss` of the (fixed) latent means. An epoch is one pass over the
    unlabelled rows. Features are standardised with the mean and standard deviation of all
    rows. Torch's global random state is left untouched.

    Parameters
    ----------
    X_labeled : ndarray of shape (n_labeled, n_features), float32
    X_unlabeled : ndarray of shape (n_unlabeled, n_features), float32
    latent_dim, hidden_units, beta, adversary_weight, max_epochs, batch_size, lr, device, \
architecture
        See :class:`~skal.strategies.VAAL`.
    seed : int
        Seeds initialisation, the reparameterisation draws and the batch order.

    Returns
    -------
    model : VAALModel
    """
    device = resolve_device(device)
    mean, scale = _standardiser(X_labeled, X_unlabeled)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        widths = _widths(hidden_units)
        if architecture == "conv":
            vae = ConvVAE(latent_dim).to(device)
        else:
            vae = VAE(X_labeled.shape[1], latent_dim, widths).to(device)
        # three linear layers, as the paper's discriminator, as wide as the VAE's last
        discriminator = Discriminator(latent_dim, (widths[-1],) * 2).to(device)
        model = VAALModel(vae, discriminator, mean, scale, device)
        L, U = model._tensor(X_labeled), model._tensor(X_unlabeled)
        vae_optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
        d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=lr)
        vae.train()
        discriminator.train()
        batch_L = min(batch_size, L.shape[0])
        order_L, cursor = torch.randperm(L.shape[0], device=device), 0
        for _ in range(max_epochs):
            order_U = torch.randperm(U.shape[0], device=device)
            for start in range(0, U.shape[0], batch_size):
                if cursor + batch_L > L.shape[0]:
                    order_L, cursor = torch.randperm(L.shape[0], device=device), 0
                xl = L[order_L[cursor:cursor + batch_L]]
                cursor += batch_L
                xu = U[order_U[start:start + batch_size]]
                _vaal_step(vae, discriminator, vae_optimizer, d_optimizer, xl, xu, beta,
                           adversary_weight)
    return model


def _vaal_step(vae, discriminator, vae_optimizer, d_optimizer, xl, xu, beta, adversary_weight):
    recon_l, mu_l, logvar_l = vae(xl)
    recon_u, mu_u, logvar_u = vae(xu)
    loss = (vae_loss(xl, recon_l, mu_l, logvar_l, beta)
            + vae_loss(xu, recon_u, mu_u, logvar_u, beta)
            + adversary_weight * adversarial_loss(discriminator(mu_l), discriminator(mu_u)))
    vae_optimizer.zero_grad()
    loss.backward()
    vae_optimizer.step()
    d_loss = discriminator_loss(discriminator(mu_l.detach()), discriminator(mu_u.detach()))
    d_optimizer.zero_grad()
    d_loss.backward()
    d_optimizer.step()
    return loss.detach(), d_loss.detach()
