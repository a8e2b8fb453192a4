"""Labelling by hand: crash-safe sessions journalled in SQLite, several annotators and their
aggregation (majority vote, Dawid–Skene), the ``skal label`` terminal command and its web page
(``skal label --web``; Starlette and uvicorn are imported only when it is served)."""

from skal.labeling._aggregate import DawidSkene, disagreement, majority_vote
from skal.labeling._journal import (
    AlreadyAnsweredError,
    Journal,
    JournalError,
    PoolMismatchError,
    pool_fingerprint,
)
from skal.labeling._pools import Pool, load_pool, pool_from_images
from skal.labeling._session import (
    LabelingSession,
    Query,
    UnknownSampleError,
    load_checkpoint,
)
from skal.labeling._web import make_app, serve

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
    "Pool",
    "load_pool",
    "pool_from_images",
    "make_app",
    "serve",
]
