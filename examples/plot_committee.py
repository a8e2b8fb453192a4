"""
Query by committee
==================

A :class:`~skal.CommitteeLearner` trains several members (bagged copies of one classifier, or
a list of different classifiers) and offers ``predict_proba_samples``, the members'
probabilities, which committee strategies measure disagreement on: vote entropy, the mean KL
divergence to the consensus, or the entropy of the consensus.
"""

# %%
import os

from sklearn.datasets import load_digits
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal import ActiveLearner, CommitteeLearner, KLDivergence, RandomSampling, VoteEntropy
from skal.experiments import plot_learning_curves, run_experiment, summarize

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                  stratify=y)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
common = {"batch_size": 10, "n_initial": 20}
learners = {
    "random": ActiveLearner(model, RandomSampling(), **common),
    "bagged, vote entropy": CommitteeLearner(model, VoteEntropy(), n_estimators=5, **common),
    "bagged, KL divergence": CommitteeLearner(model, KLDivergence(), n_estimators=5, **common),
    # A heterogeneous committee: three different models, each trained on all labelled rows.
    "mixed, vote entropy": CommitteeLearner(
        [model, GaussianNB(), RandomForestClassifier(n_estimators=50)], VoteEntropy(),
        bootstrap=False, **common),
}
result = run_experiment(learners, X_pool, y_pool, X_test, y_test,
                        budget=60 if FAST else 150, n_repeats=2 if FAST else 3)
print(summarize(result)[["final_score_mean", "aulc_mean"]].round(3))
fig = plot_learning_curves(result)
