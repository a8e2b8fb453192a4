"""
MC-dropout BALD with a small network
====================================

A :class:`skal.nets.NetClassifier` (a skorch network) keeps its dropout layers active at
query time to draw posterior samples (consistent MC dropout), so BALD can pick the digits
whose label the network's samples disagree about most: the mutual information between the
label and the weights. Here a small MLP on the 8x8 digits, on the CPU.
"""

# %%
import os

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skal import ActiveLearner, RandomSampling
from skal.experiments import plot_learning_curves, run_experiment, summarize
from skal.nets import MLP, NetClassifier
from skal.strategies import BALD

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                  stratify=y)
net = NetClassifier(MLP, max_epochs=10 if FAST else 40, lr=1e-2, device="cpu", n_samples=20)
common = {"batch_size": 10, "n_initial": 20}
learners = {
    "random": ActiveLearner(net, RandomSampling(), **common),
    "BALD": ActiveLearner(net, BALD(), **common),
}
result = run_experiment(learners, X_pool, y_pool, X_test, y_test,
                        budget=50 if FAST else 120, n_repeats=1 if FAST else 2)
print(summarize(result)[["final_score_mean", "aulc_mean"]].round(3))
fig = plot_learning_curves(result)
