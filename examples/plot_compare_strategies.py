"""
Comparing query strategies with learning curves
===============================================

:func:`~skal.experiments.run_experiment` simulates active learning on a pool whose labels are
known: every strategy starts from the same random labelled rows in a repeat, queries a batch
per cycle, and its model is scored on a held-out test set after every fit. The tidy result
feeds the summaries (AULC, labels needed to reach a target score) and the plots.
"""

# %%
import os

import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal import ActiveLearner, EntropySampling, MarginSampling, RandomSampling
from skal.experiments import (
    compare_to_random,
    plot_labels_to_target,
    plot_learning_curves,
    run_experiment,
    summarize,
)

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                  stratify=y)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
learners = {
    "random": ActiveLearner(model, RandomSampling(), batch_size=10, n_initial=20),
    "margin": ActiveLearner(model, MarginSampling(), batch_size=10, n_initial=20),
    "entropy": ActiveLearner(model, EntropySampling(), batch_size=10, n_initial=20),
}
result = run_experiment(learners, X_pool, y_pool, X_test, y_test,
                        budget=80 if FAST else 200, n_repeats=2 if FAST else 4)
result.head()

# %%
# One row per strategy: final accuracy, the area under the learning curve (the mean accuracy
# over the budget, in [0, 1]) and the labels needed to reach 90 % accuracy, with the 25/50/75 %
# quantiles over repeats.
summarize(result, target=0.9)

# %%
# The comparison with random sampling is paired: repeat ``r`` of every strategy shares its seed
# and its initial labelled rows with repeat ``r`` of random sampling.
compare_to_random(result)

# %%
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
plot_learning_curves(result, target=0.9, ax=left)
plot_labels_to_target(result, 0.9, ax=right)
plt.show()
