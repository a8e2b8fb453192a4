"""Labelling by hand: crash-safe sessions journalled in SQLite, several annotators and their
aggregation (majority vote, Dawid–Skene), and the ``skal label`` terminal command."""

from skal.labeling._aggregate import DawidSkene, disagreement, majority_vote
from skal.labeling._journal import (
    AlreadyAnsweredError,
    Journal,
    JournalError,
    PoolMismatchError,
    pool_fingerprint,
)
from skal.labeling._session import (
    LabelingSession,
    Query,
    UnknownSampleError,
    load_checkpoint,
)

__all__ = [
    "LabelingSession",
    "Query",
    "Journal",
    "JournalError",
    "PoolMismatchError",
    "AlreadyAnsweredError",
    "UnknownSampleError",
    "pool_fingerprint",
    "load_checkpoint",
    "majority_vote",
    "disagreement",
    "DawidSkene",
]
