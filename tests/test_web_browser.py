"""``skal label --web`` end to end in a real headless browser (Debian's chromium and
chromedriver, driven by selenium): key presses, undo, reload, two annotators, and a server
killed with SIGKILL whose page never called an unsaved label saved.

Skipped, with the reason, when no chromium/chromedriver is installed (``.ci/run`` installs
them). Set ``SKAL_WEB_SCREENSHOT=PATH`` to keep the page's screenshot (the docs' image).
"""

import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skal.labeling import Journal

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

WAIT = 60


def browser_paths():
    binary = next(filter(None, map(shutil.which, ("chromium", "chromium-browser",
                                                  "google-chrome"))), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("no headless browser: install chromium and chromium-driver (apt-get "
                    "install -y chromium chromium-driver; .ci/run does) to run the browser "
                    "tests")
    return binary, driver


def open_browser():
    binary, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1060,800", "--disable-extensions"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture
def browsers():
    """A factory of headless browsers, each its own profile (own name, own storage)."""
    opened = []

    def make():
        opened.append(open_browser())
        return opened[-1]

    yield make
    for browser in opened:
        browser.quit()


class Server:
    """``skal label --web`` in a subprocess; ``url`` as it printed it."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "skal._cli", "label", *map(str, args), "--web", "--port",
             "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines = []
        for line in self.process.stdout:
            self.lines.append(line)
            match = re.search(r"on (http://\S+)", line)
            if match:
                self.url = match.group(1)
                return
        raise AssertionError("".join(self.lines) + self.process.stderr.read())

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return "".join(self.lines) + out, err


@pytest.fixture
def servers():
    started = []

    def start(*args):
        started.append(Server(*args))
        return started[-1]

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


def state(browser, what):
    return browser.execute_script(f"return window.skal.{what};")


def shown_count(browser):
    return int(browser.find_element(By.ID, "sample").get_attribute("data-shown"))


def sample_shown(browser):
    return browser.find_element(By.ID, "sample").get_attribute("data-sample-id")


def sign_in(browser, url, name):
    browser.get(url)
    field = WebDriverWait(browser, WAIT, poll_frequency=0.02).until(
        lambda b: b.find_element(By.ID, "name-input").is_displayed()
        and b.find_element(By.ID, "name-input"))
    field.send_keys(name + "\n")
    WebDriverWait(browser, WAIT, poll_frequency=0.02).until(lambda b: shown_count(b) >= 1)
    return sample_shown(browser)


def press(browser, key):
    """Press ``key``; wait for the next sample (or state) to be shown; return its id."""
    before = shown_count(browser)
    ActionChains(browser).send_keys(key).perform()
    WebDriverWait(browser, WAIT, poll_frequency=0.02).until(lambda b: shown_count(b) > before)
    return sample_shown(browser)


def live_answers(journal):
    with Journal(journal) as j:
        assert j.integrity_check() == "ok"
        return {(a["sample_id"], a["annotator"]): a["label"] for a in j.answers()}


def digits_files(tmp_path):
    X, y = load_digits(return_X_y=True)
    np.save(tmp_path / "pool.npy", X[:600].reshape(-1, 8, 8))
    np.savez(tmp_path / "held_out.npz", X=X[1200:], y=y[1200:])
    return tmp_path / "pool.npy", y[:600], tmp_path / "held_out.npz"


def mnist_files(tmp_path, mnist_t10k):
    X, y = mnist_t10k
    np.save(tmp_path / "pool.npy", X[:3000].reshape(-1, 28, 28))
    np.savez(tmp_path / "held_out.npz", X=X[-1000:], y=y[-1000:])
    return tmp_path / "pool.npy", y[:3000], tmp_path / "held_out.npz"


# MNIST (the evidence) runs with the slow set; the digits keep the fast set's check.
# In the slow set (CI runs it): a browser start costs seconds; tests/test_web.py drives the same
# API without one in the default set.
@pytest.mark.slow
@pytest.mark.parametrize("data", ["digits", "mnist"])
def test_label_20_by_key_presses_undo_reload(tmp_path, browsers, servers, data, request):
    pool, truth, held_out = (digits_files(tmp_path) if data == "digits" else
                             mnist_files(tmp_path, request.getfixturevalue("mnist_t10k")))
    journal = tmp_path / "j.sqlite"
    server = servers(pool, "--journal", journal, "--classes", ",".join(map(str, range(10))),
                     "--seed", "0", "--batch-size", "5", "--query-ahead", "--budget", "30",
                     "--show-guess", "--held-out", held_out)
    browser = browsers()
    sample = sign_in(browser, server.url, "alice")
    assert browser.find_element(By.ID, "progress-text").text == "0 / 30 labelled"
    keys = [k.text for k in browser.find_elements(By.CSS_SELECTOR, "button.class kbd")]
    assert keys == list("0123456789")  # the digits are typed as themselves
    labelled = []
    for _ in range(20):
        labelled.append(sample)
        sample = press(browser, str(truth[int(sample)]))
    assert len(set(labelled)) == 20 and sample not in labelled
    assert browser.find_element(By.ID, "progress-text").text == "20 / 30 labelled"
    saved = state(browser, "saved")
    assert [s["sample_id"] for s in saved] == labelled
    assert [s["label"] for s in saved] == [str(truth[int(s)]) for s in labelled]
    assert press(browser, "u") == labelled[-1]  # undone: shown again
    assert "undone" in browser.find_element(By.ID, "status").text
    WebDriverWait(browser, WAIT, poll_frequency=0.02).until(
        lambda b: b.find_element(By.ID, "guess").is_displayed()
        and b.find_element(By.ID, "curve").is_displayed()
        and b.find_elements(By.CSS_SELECTOR, "#curve polyline"))
    screenshot = tmp_path / "page.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("SKAL_WEB_SCREENSHOT") and data == "mnist":
        shutil.copy(screenshot, os.environ["SKAL_WEB_SCREENSHOT"])

    browser.refresh()  # the name is remembered; the held sample comes back
    WebDriverWait(browser, WAIT, poll_frequency=0.02).until(lambda b: shown_count(b) >= 1)
    assert sample_shown(browser) == labelled[-1]
    assert browser.find_element(By.ID, "progress-text").text == "19 / 30 labelled"
    assert live_answers(journal) == {(s, "alice"): str(truth[int(s)]) for s in labelled[:-1]}
    out, err = server.stop()
    assert "Stopped; every answer is saved" in out, err


@pytest.mark.slow
def test_two_annotators_with_labels_per_sample_2(tmp_path, browsers, servers):
    pool, truth, _ = digits_files(tmp_path)
    journal = tmp_path / "j.sqlite"
    server = servers(pool, "--journal", journal, "--classes", ",".join(map(str, range(10))),
                     "--seed", "1", "--batch-size", "4", "--labels-per-sample", "2",
                     "--export", tmp_path / "labels.json")
    alice, bob = browsers(), browsers()
    at_alice = sign_in(alice, server.url, "alice")
    by_alice = []
    for _ in range(4):
        by_alice.append(at_alice)
        at_alice = press(alice, str(truth[int(at_alice)]))
    at_bob = sign_in(bob, server.url, "bob")
    by_bob = []
    for i in range(4):
        assert at_bob != at_alice  # never the sample the other one holds
        by_bob.append(at_bob)
        label = truth[int(at_bob)] if i != 1 else (truth[int(at_bob)] + 1) % 10
        at_bob = press(bob, str(label))
    assert by_bob == by_alice  # bob is asked for alice's samples first
    # Now alice is asked for bob's next, new sample, and never the one bob shows.
    for _ in range(3):
        assert at_alice != at_bob
        at_alice = press(alice, str(truth[int(at_alice)]))
    answers = live_answers(journal)
    for s in by_alice:
        assert answers[(s, "alice")] == str(truth[int(s)])
        assert (s, "bob") in answers
    out, err = server.stop()
    assert "Wrote the labels of" in out, err
    import json

    exported = {row["sample_id"]: row for row in json.loads((tmp_path / "labels.json")
                                                            .read_text())}
    assert all(exported[s]["n_annotators"] == 2 for s in by_alice)


@pytest.mark.slow
def test_sigkill_loses_no_label_the_page_called_saved(tmp_path, browsers, servers):
    pool, truth, _ = digits_files(tmp_path)
    journal = tmp_path / "j.sqlite"
    common = [pool, "--journal", journal, "--classes", ",".join(map(str, range(10))),
              "--batch-size", "3", "--query-ahead"]
    # Exposed on every interface: the page must send the token printed once.
    server = servers(*common, "--seed", "2", "--host", "0.0.0.0")
    token = re.search(r"token: (\S+)", "".join(server.lines)).group(1)
    assert server.url.endswith(f"#token={token}")
    local = server.url.replace("0.0.0.0", "127.0.0.1")
    browser = browsers()
    sample = sign_in(browser, local, "carol")
    assert token not in browser.current_url  # dropped from the address bar
    for _ in range(9):
        sample = press(browser, str(truth[int(sample)]))
    # One more key press, and the server killed while it may be in flight.
    ActionChains(browser).send_keys(str(truth[int(sample)])).perform()
    os.kill(server.process.pid, signal.SIGKILL)
    server.process.wait()
    WebDriverWait(browser, WAIT, poll_frequency=0.02).until(lambda b: not state(b, "busy"))
    saved = {s["sample_id"]: s["label"] for s in state(browser, "saved")}
    answers = live_answers(journal)
    assert len(saved) >= 9
    for sid, label in saved.items():  # every label the page called saved is in the journal
        assert answers[(sid, "carol")] == label
    if len(saved) == 9:  # the last one was not acknowledged: the page says so
        WebDriverWait(browser, WAIT, poll_frequency=0.02).until(
            lambda b: "NOT saved" in b.find_element(By.ID, "status").text)

    server = servers(*common, "--resume")
    browser.get(server.url)  # another port, another origin: the name is asked again
    sample = sign_in(browser, server.url, "carol")
    assert sample not in saved
    for _ in range(3):
        sample = press(browser, str(truth[int(sample)]))
    assert len(live_answers(journal)) == len(answers) + 3
