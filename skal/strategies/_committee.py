"""Query-by-committee strategies (Settles 2009, section 3.2) over posterior samples.

They read ``learner.predict_proba_samples(X) -> (n_samples, n_pool, n_classes)``: the members of
a :class:`~skal.CommitteeLearner` today, MC-dropout passes or deep ensembles as well.
"""

import numpy as np

from skal.strategies._base import PoolScoringStrategy, require
from skal.strategies._uncertainty import entropy


def _posterior_samples(learner, X_chunk, strategy_name):
    samples = np.asarray(
        require(learner, "predict_proba_samples", strategy_name)(X_chunk), dtype=np.float64
    )
    if samples.ndim != 3:
        raise ValueError(
            f"{strategy_name}: predict_proba_samples must return an array of shape "
            f"(n_samples, n_pool, n_classes), got shape {samples.shape}."
        )
    return samples


class _CommitteeStrategy(PoolScoringStrategy):
    _requires = "predict_proba_samples"

    def _outputs_per_row(self):
        return 32  # a guess at the number of members or passes, for chunk sizing only


class VoteEntropy(_CommitteeStrategy):
    """Select rows on which the committee's hard votes disagree most.

    The score is the entropy of the vote shares ``V(c, x) / K``, where ``V(c, x)`` counts the
    members (or posterior samples) whose most probable class for ``x`` is ``c`` (Dagan and
    Engelson 1995). It is 0 when all members agree and at most ``log min(K, C)``.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores (vote entropy takes few distinct values).
    """

    def _score_chunk(self, learner, X_chunk):
        samples = _posterior_samples(learner, X_chunk, type(self).__name__)
        n_members, n_rows, n_classes = samples.shape
        votes = samples.argmax(axis=2)
        shares = np.zeros((n_rows, n_classes))
        rows = np.arange(n_rows)
        for member_votes in votes:
            shares[rows, member_votes] += 1.0
        shares /= n_members
        return entropy(shares, axis=1)


class KLDivergence(_CommitteeStrategy):
    """Select rows where members' distributions diverge most from the consensus.

    The score is ``(1/K) sum_k KL(p_k(. | x) || p_bar(. | x))`` with ``p_bar`` the members'
    mean, "maximum disagreement" in McCallum and Nigam (1998). It is the mutual information
    between the prediction and the member index, and is always >= 0.

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    def _score_chunk(self, learner, X_chunk):
        samples = _posterior_samples(learner, X_chunk, type(self).__name__)
        consensus = samples.mean(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(samples > 0, samples * np.log(samples / consensus), 0.0)
        # Rounding can make a true zero slightly negative.
        return np.maximum(terms.sum(axis=2).mean(axis=0), 0.0)


class ConsensusEntropy(_CommitteeStrategy):
    """Select rows whose consensus (mean) class distribution has the highest entropy.

    The score is ``H[p_bar(. | x)]`` with ``p_bar`` the mean of the members' distributions
    ("soft vote entropy").

    Parameters
    ----------
    random_state : int, RandomState instance or None, default=None
        Breaks ties between equal scores.
    """

    def _score_chunk(self, learner, X_chunk):
        samples = _posterior_samples(learner, X_chunk, type(self).__name__)
        return entropy(samples.mean(axis=0), axis=1)
