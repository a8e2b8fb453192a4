"""
Grid-searching query strategies and models
==========================================

With ``budget`` set, :meth:`ActiveLearner.fit <skal.ActiveLearner.fit>` runs a whole simulated
active-learning loop, so :class:`~sklearn.model_selection.GridSearchCV` answers "which
strategy and which model give the best classifier for a budget of labels?". The same grid
given to :func:`~skal.experiments.run_experiment` shows how each candidate gets there.
"""

# %%
import os

import pandas as pd
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.naive_bayes import GaussianNB

from skal import ActiveLearner, EntropySampling, MarginSampling, RandomSampling
from skal.experiments import plot_learning_curves, run_experiment, summarize

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
budget = 60 if FAST else 120
grid = {
    "query_strategy": [RandomSampling(), MarginSampling(), EntropySampling()],
    "estimator": [LogisticRegression(max_iter=1000), GaussianNB()],
}
search = GridSearchCV(ActiveLearner(budget=budget, batch_size=20, random_state=0), grid,
                      cv=3, n_jobs=1)
search.fit(X, y)
ranking = pd.DataFrame(search.cv_results_)[["param_query_strategy", "param_estimator",
                                            "mean_test_score", "rank_test_score"]]
ranking.sort_values("rank_test_score")

# %%
# The same grid as learning curves on a held-out test set.
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                  stratify=y)
result = run_experiment(ActiveLearner(batch_size=20, n_initial=20), X_pool, y_pool, X_test,
                        y_test, param_grid=grid, budget=budget, n_repeats=2)
print(summarize(result)[["final_score_mean", "aulc_mean"]].round(3))
fig = plot_learning_curves(result)
