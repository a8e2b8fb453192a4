"""
Core-Set: covering the pool
===========================

Core-Set (Sener & Savarese 2018) ignores the model's uncertainty and picks, greedily, the pool
row farthest from everything labelled so far (k-centre greedy), so the labelled set covers
the pool. Distances are measured in the learner's embedding: here the output of the
Pipeline's preprocessing (scaling and PCA) in front of a logistic regression.
"""

# %%
import os

from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal import ActiveLearner, MarginSampling, RandomSampling
from skal.experiments import plot_learning_curves, run_experiment, summarize
from skal.strategies import CoreSet

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                  stratify=y)
model = make_pipeline(StandardScaler(), PCA(n_components=20, random_state=0),
                      LogisticRegression(max_iter=1000))
common = {"batch_size": 10, "n_initial": 20}
learners = {
    "random": ActiveLearner(model, RandomSampling(), **common),
    "margin": ActiveLearner(model, MarginSampling(), **common),
    "Core-Set": ActiveLearner(model, CoreSet(), **common),
}
result = run_experiment(learners, X_pool, y_pool, X_test, y_test,
                        budget=80 if FAST else 200, n_repeats=2 if FAST else 3)
print(summarize(result)[["final_score_mean", "aulc_mean"]].round(3))
fig = plot_learning_curves(result)
