"""
Preprocessing with a Pipeline
=============================

Put the preprocessing inside the learner: ``ActiveLearner(make_pipeline(StandardScaler(),
LogisticRegression()))``. The learner stays the outermost object, so ``query`` and ``teach``
are there, and the whole Pipeline is refitted on the labelled rows every cycle.

The other order, a :class:`~sklearn.pipeline.Pipeline` whose last step is an
:class:`~skal.ActiveLearner`, can ``fit`` and ``score`` (so it cross-validates a simulated run,
with the preprocessing fitted on all rows, labelled or not) but has no ``query`` or ``teach``:
a scikit-learn Pipeline forwards only the standard estimator methods.

Inside the learner, the preprocessing sees only the labelled rows. For a step that should
learn from the unlabelled rows too, such as a PCA of the whole pool, fit it once on the pool
before the loop (``X_reduced = PCA(30).fit_transform(X)``) and give the learner
``X_reduced``.
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


def model():
    return make_pipeline(StandardScaler(), LogisticRegression())


# %%
# The Pipeline inside the learner: one round of labelling by hand, with the known labels
# standing in for the person.
y_partial = np.full(len(y), -1)
y_partial[:20] = y[:20]
learner = ActiveLearner(model(), MarginSampling(), batch_size=10).fit(X, y_partial)
unlabelled = np.flatnonzero(y_partial == -1)
idx = learner.query(X[unlabelled])
learner.teach(X[unlabelled[idx]], y[unlabelled[idx]])
print(f"{learner.n_labels_} labels; asked for rows {unlabelled[idx].tolist()}")

# %%
# The same learner simulates whole runs with ``budget`` set, and cross-validates.
scores = {}
for name, strategy in [("random", RandomSampling()), ("margin", MarginSampling())]:
    inner = ActiveLearner(model(), strategy, budget=budget, batch_size=10, random_state=0)
    scores[name] = cross_val_score(inner, X, y, cv=3)
    print(f"{name:>7}: accuracy with {budget} labels {scores[name].mean():.3f}")

# %%
# The Pipeline around the learner: fine for a simulated run, where it fits the scaler and a
# 30-component PCA on all rows of the fold (a PCA inside the learner would have only the
# first 10 labelled rows to fit on), but it cannot ``query``.
outer = make_pipeline(
    StandardScaler(),
    PCA(n_components=30, random_state=0),
    ActiveLearner(LogisticRegression(), MarginSampling(), budget=budget, batch_size=10,
                  random_state=0),
)
scores["margin, Pipeline around"] = cross_val_score(outer, X, y, cv=3)
print("the outer Pipeline has query:", hasattr(outer, "query"))

fig, ax = plt.subplots(layout="constrained")
ax.bar(list(scores), [np.mean(s) for s in scores.values()],
       yerr=[np.std(s) for s in scores.values()], capsize=4, color=["C0", "C1", "C2"])
ax.set_ylabel(f"3-fold accuracy with {budget} labels")
ax.set_ylim(0.5, 1)
plt.show()
