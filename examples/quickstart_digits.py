"""
Active learning on the digits data
==================================

An :class:`~skal.ActiveLearner` starts from 20 labelled digits of scikit-learn's bundled data
set, asks for 20 more per round by margin sampling, and is taught their labels; a twin learner
asks for random rows. Test accuracy after every round shows margin sampling pulling ahead.
"""

# %%
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skal import ActiveLearner, MarginSampling, RandomSampling

X, y = load_digits(return_X_y=True)
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.3, random_state=0)
model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
initial = np.random.RandomState(0).choice(len(X_pool), size=20, replace=False)

learners = {}
pools = {}
for name, strategy in [("margin", MarginSampling()), ("random", RandomSampling(random_state=0))]:
    y_known = np.full_like(y_pool, -1)  # -1 marks an unlabelled row
    y_known[initial] = y_pool[initial]
    learners[name] = ActiveLearner(model, strategy, batch_size=20).fit(X_pool, y_known)
    pools[name] = np.setdiff1d(np.arange(len(X_pool)), initial)  # rows still unlabelled

print("labels  margin  random")
for _ in range(10):
    n_labels = learners["margin"].n_labels_
    row = []
    for name, learner in learners.items():
        row.append(learner.score(X_test, y_test))
        picked = pools[name][learner.query(X_pool[pools[name]])]  # rows to label next
        learner.teach(X_pool[picked], y_pool[picked])  # the oracle answers
        pools[name] = np.setdiff1d(pools[name], picked)
    print(f"{n_labels:6d}  {row[0]:.3f}   {row[1]:.3f}")
