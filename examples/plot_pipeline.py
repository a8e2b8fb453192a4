"""
Active learning inside a Pipeline
=================================

An :class:`~skal.ActiveLearner` is a scikit-learn classifier, so it can be the last step of
a :class:`~sklearn.pipeline.Pipeline` (the preprocessing is fitted on all rows, labelled or
not) or wrap a Pipeline as its estimator (the preprocessing is refitted on the labelled rows
each cycle). Both cross-validate like any classifier.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal import ActiveLearner, MarginSampling, RandomSampling

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
budget = 60 if FAST else 150

# %%
# Preprocessing in front of the learner.
scores = {}
for name, strategy in [("random", RandomSampling()), ("margin", MarginSampling())]:
    outer = make_pipeline(
        StandardScaler(),
        PCA(n_components=30, random_state=0),
        ActiveLearner(LogisticRegression(max_iter=1000), strategy, budget=budget,
                      batch_size=10, random_state=0),
    )
    scores[name] = cross_val_score(outer, X, y, cv=3)
    print(f"{name:>7}: accuracy with {budget} labels {scores[name].mean():.3f}")

# %%
# A Pipeline as the learner's estimator.
inner = ActiveLearner(make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
                      MarginSampling(), budget=budget, batch_size=10, random_state=0)
scores["margin, inner pipeline"] = cross_val_score(inner, X, y, cv=3)

fig, ax = plt.subplots(layout="constrained")
ax.bar(list(scores), [np.mean(s) for s in scores.values()],
       yerr=[np.std(s) for s in scores.values()], capsize=4, color=["C0", "C1", "C2"])
ax.set_ylabel(f"3-fold accuracy with {budget} labels")
ax.set_ylim(0.5, 1)
plt.show()
