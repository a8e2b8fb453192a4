"""Web labelling latency: from a key press to the next sample shown, in a headless browser.

The server (``skal.labeling._web.serve`` on ``make_app``, as ``skal label --web`` runs it)
runs in a child process; headless chromium, driven by selenium, labels ``--labels`` samples by
key presses with the true class, pausing ``--think`` seconds on each sample like a person. The
page times each answer itself: from the keydown event to the frame after the next sample is in
the page (image decoded), which includes the journal commit (fsync) before the server answers.
Two learners, both with query-ahead:

* ``logreg-digits``: the default learner (``LogisticRegression(max_iter=1000)`` with
  ``MarginSampling``) on scikit-learn's 1,797 digits (8x8 images);
* ``cnn-mnist``: ``NetClassifier(MNISTConvNet)`` (``skal.nets``, CPU, one torch thread) with
  ``MarginSampling`` on the first ``--mnist-pool`` MNIST t10k images (needs the files in
  ``--mnist``; skipped otherwise).

Run: ``python benchmarks/bench_web_latency.py`` (``--think 0`` for back-to-back key presses).
"""

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np


def _serve(config, journal, queue):
    """In the child: build the pool and learner, serve, report the URL."""
    from skal import ActiveLearner
    from skal.labeling._pools import pool_from_images
    from skal.labeling._web import make_app, serve
    from skal.strategies import MarginSampling

    if config["name"] == "logreg-digits":
        from sklearn.datasets import load_digits

        X, _ = load_digits(return_X_y=True)
        pool = pool_from_images(X.reshape(-1, 8, 8))
        learner = None  # the default: LogisticRegression(max_iter=1000) + MarginSampling
    else:
        import torch

        from skal.datasets import load_mnist_idx
        from skal.nets import MNISTConvNet, NetClassifier

        torch.set_num_threads(1)  # leave the other core to the server and the browser
        X, _ = load_mnist_idx(config["mnist"])
        X = X[: config["mnist_pool"]]
        pool = pool_from_images(X.reshape(-1, 28, 28), X=X)
        learner = ActiveLearner(
            NetClassifier(MNISTConvNet, max_epochs=10, device="cpu", random_state=0),
            MarginSampling(),
        )
    app = make_app(pool, journal, classes=list(range(10)), learner=learner,
                   batch_size=config["batch_size"], query_ahead=True, random_state=0)
    serve(app, "127.0.0.1", 0, announce=queue.put)


def _truth(config):
    if config["name"] == "logreg-digits":
        from sklearn.datasets import load_digits

        return load_digits(return_X_y=True)[1]
    from skal.datasets import load_mnist_idx

    return load_mnist_idx(config["mnist"])[1]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("google-chrome")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1060,640"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def measure(config, n_labels, think):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    truth = _truth(config)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        server = context.Process(target=_serve,
                                 args=(config, os.path.join(directory, "j.sqlite"), queue))
        server.start()
        browser = _browser()
        try:
            url = queue.get(timeout=300)
            browser.get(url)
            wait = WebDriverWait(browser, 300, poll_frequency=0.005)
            field = wait.until(lambda b: b.find_element(By.ID, "name-input"))
            field.send_keys("bench\n")

            def shown():
                return int(browser.find_element(By.ID, "sample").get_attribute("data-shown"))

            wait.until(lambda b: shown() >= 1)
            for _ in range(n_labels):
                sample = browser.find_element(By.ID, "sample").get_attribute("data-sample-id")
                before = shown()
                time.sleep(think)  # the person looks at the sample
                ActionChains(browser).send_keys(str(truth[int(sample)])).perform()
                wait.until(lambda b, before=before: shown() > before)
            timings = browser.execute_script("return window.skal.timings;")
            phases = browser.execute_script("return window.skal.phases;")
        finally:
            browser.quit()
            server.terminate()
            server.join(60)
    return np.array(timings), phases


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--think", type=float, default=0.5,
                        help="seconds the simulated person looks at each sample")
    parser.add_argument("--batch-size", type=int, default=10)
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--mnist", default=os.environ.get(
        "SKAL_MNIST_DIR", os.path.join(here, "..", "..", "shared", "data", "mnist")))
    parser.add_argument("--mnist-pool", type=int, default=5000)
    parser.add_argument("--only", choices=("logreg-digits", "cnn-mnist"), default=None)
    args = parser.parse_args()
    if shutil.which("chromedriver") is None:
        sys.exit("needs chromium and chromedriver: apt-get install -y chromium chromium-driver")
    names = [args.only] if args.only else ["logreg-digits", "cnn-mnist"]
    print(f"{args.labels} labels, {args.think} s per sample, batch {args.batch_size}, "
          f"query-ahead; load average before: {os.getloadavg()[0]:.2f}; "
          f"{os.cpu_count()} CPUs")
    print(f"{'learner':15} {'median ms':>9} {'p95 ms':>7} {'max ms':>7}  "
          "median parts (server answer / show / frame)")
    for name in names:
        if name == "cnn-mnist" and not os.path.exists(
                os.path.join(args.mnist, "t10k-images-idx3-ubyte.gz")):
            print(f"{name:15} skipped: no MNIST files in {args.mnist}")
            continue
        config = {"name": name, "batch_size": args.batch_size, "mnist": args.mnist,
                  "mnist_pool": args.mnist_pool}
        timings, phases = measure(config, args.labels, args.think)
        parts = " / ".join(f"{statistics.median(p[k] for p in phases):.0f}"
                           for k in ("answer", "render", "frame"))
        print(f"{name:15} {np.median(timings):9.0f} {np.percentile(timings, 95):7.0f} "
              f"{timings.max():7.0f}  {parts}  (n={len(timings)})", flush=True)


if __name__ == "__main__":
    main()
