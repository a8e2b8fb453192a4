"""
BatchBALD against top-k BALD
============================

Taking the ``k`` highest BALD scores fills a batch with near-duplicates: each one is
informative alone, but together they carry little more than one. BatchBALD scores the batch
jointly (the mutual information between the batch's labels and the weights) and picks it
greedily. The gap shows with large batches; here batches of 20 digits with an MC-dropout MLP.
"""

# %%
import os

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from skal import ActiveLearner, RandomSampling
from skal.experiments import plot_learning_curves, run_experiment, summarize
from skal.nets import MLP, NetClassifier
from skal.strategies import BALD, BatchBALD

FAST = os.environ.get("SKAL_EXAMPLES_FAST") == "1"
X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype("float32")
X_pool, X_test, y_pool, y_test = train_test_split(X, y, test_size=0.25, random_state=0,
                                                  stratify=y)
net = NetClassifier(MLP, max_epochs=10 if FAST else 40, lr=1e-2, device="cpu", n_samples=20)
common = {"batch_size": 20, "n_initial": 20}
learners = {
    "random": ActiveLearner(net, RandomSampling(), **common),
    "BALD (top k)": ActiveLearner(net, BALD(), **common),
    "BatchBALD": ActiveLearner(net, BatchBALD(n_joint_samples=1000 if FAST else 5000),
                               **common),
}
result = run_experiment(learners, X_pool, y_pool, X_test, y_test,
                        budget=60 if FAST else 140, n_repeats=1 if FAST else 2)
print(summarize(result)[["final_score_mean", "aulc_mean"]].round(3))
fig = plot_learning_curves(result)
