"""Neural networks for active learning on skorch (a classifier and a regressor): MC-dropout
posterior samples, embeddings, ready-made modules. Importing this package imports torch and
skorch; ``import skal`` does not.
"""

from skal.nets._base import resolve_device
from skal.nets._classifier import NetClassifier
from skal.nets._contrastive import (
    ContrastiveEncoder,
    ConvEncoder,
    DigitAugment,
    EncoderClassifier,
    nt_xent_loss,
)
from skal.nets._divergence import DivergenceCheck, TrainingDivergedError
from skal.nets._generative import PoolGAN
from skal.nets._learning_loss import (
    LearningLossClassifier,
    LossPredictionModule,
    loss_ranking_loss,
)
from skal.nets._mc_dropout import ConsistentMCDropout
from skal.nets._modules import MLP, MNISTConvNet
from skal.nets._regressor import NetRegressor

__all__ = [
    "NetClassifier",
    "NetRegressor",
    "ContrastiveEncoder",
    "ConvEncoder",
    "DigitAugment",
    "EncoderClassifier",
    "nt_xent_loss",
    "LearningLossClassifier",
    "LossPredictionModule",
    "loss_ranking_loss",
    "MLP",
    "MNISTConvNet",
    "PoolGAN",
    "ConsistentMCDropout",
    "DivergenceCheck",
    "TrainingDivergedError",
    "resolve_device",
]
