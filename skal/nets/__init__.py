"""Neural networks for active learning on skorch: MC-dropout posterior samples, embeddings,
ready-made modules. Importing this package imports torch and skorch; ``import skal`` does not.
"""

from skal.nets._classifier import NetClassifier, resolve_device
from skal.nets._divergence import DivergenceCheck, TrainingDivergedError
from skal.nets._mc_dropout import ConsistentMCDropout
from skal.nets._modules import MLP, MNISTConvNet

__all__ = [
    "NetClassifier",
    "MLP",
    "MNISTConvNet",
    "ConsistentMCDropout",
    "DivergenceCheck",
    "TrainingDivergedError",
    "resolve_device",
]
