"""The web labelling app without a browser: its HTTP API (Starlette's test client), the pools
it reads, the safety checks (validation, token, host and origin, path traversal) and the
session's ``exclude``, which keeps one annotator's sample from another."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits

from skal.labeling import Journal, LabelingSession, UnknownSampleError
from skal.labeling._pools import load_pool, pool_from_images

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():
    # Newer Starlette prefers the httpx2 fork; httpx works the same for these tests.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from skal.labeling._desk import check_keys, default_keys  # noqa: E402
from skal.labeling._web import make_app, serve  # noqa: E402

X_DIGITS, Y_DIGITS = load_digits(return_X_y=True)
N_POOL = 120


def digits_pool():
    return pool_from_images(X_DIGITS[:N_POOL].reshape(-1, 8, 8))


def truth(sample_id):
    return int(Y_DIGITS[int(sample_id)])


@pytest.fixture
def client(tmp_path):
    app = make_app(digits_pool(), tmp_path / "j.sqlite", classes=list(range(10)),
                   batch_size=4, random_state=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


def post(client, path, **body):
    return client.post(path, json=body)


def shown(response):
    assert response.status_code == 200, response.text
    return response.json()["sample"]["id"]


def test_label_skip_undo_through_the_api(client, tmp_path):
    config = client.get("/api/config").json()
    assert config["classes"] == list(range(10)) and config["keys"] == list("0123456789")
    assert config["budget"] == N_POOL and config["show_guess"] is False
    first = shown(client.get("/api/next", params={"annotator": "ann"}))
    # The same sample again (a page reload) until it is answered.
    assert shown(client.get("/api/next", params={"annotator": "ann"})) == first
    response = post(client, "/api/label", annotator="ann", sample_id=first, label=truth(first))
    data = response.json()
    assert data["saved"] == {"sample_id": first, "label": truth(first), "skipped": False,
                             "answer_id": 1}
    assert data["progress"] == {"labelled": 1, "budget": N_POOL}
    second = data["sample"]["id"]
    assert second != first
    third = shown(post(client, "/api/skip", annotator="ann", sample_id=second))
    data = post(client, "/api/undo", annotator="ann").json()
    assert data["undone"] == second and data["sample"]["id"] == second  # shown again
    assert data["sample"]["why"] == "undone"
    assert shown(post(client, "/api/label", annotator="ann", sample_id=second, label=3)) == third
    with Journal(tmp_path / "j.sqlite") as journal:  # committed before the answers came
        live = {a["sample_id"]: a["label"] for a in journal.answers()}
    assert live == {first: truth(first), second: 3}


@pytest.mark.parametrize(
    "path, body, status, message",
    [
        ("/api/label", {"annotator": "a", "sample_id": "999", "label": 1}, 422, "not in the pool"),
        ("/api/label", {"annotator": "a", "sample_id": 5, "label": 1}, 422, "must be a string"),
        ("/api/label", {"annotator": "a", "sample_id": "5", "label": "1"}, 422, "not one of"),
        ("/api/label", {"annotator": "a", "sample_id": "5", "label": True}, 422, "not one of"),
        ("/api/label", {"annotator": "a", "sample_id": "5", "label": 1.0}, 422, "not one of"),
        ("/api/label", {"annotator": "", "sample_id": "5", "label": 1}, 422, "annotator"),
        ("/api/label", {"annotator": "x" * 65, "sample_id": "5", "label": 1}, 422, "annotator"),
        ("/api/label", {"annotator": "skal-web", "sample_id": "5", "label": 1}, 422, "annotator"),
        ("/api/skip", {"annotator": "a", "sample_id": "../j.sqlite"}, 422, "not in the pool"),
        ("/api/undo", {"annotator": 3}, 422, "annotator"),
        ("/api/label", ["not", "an", "object"], 400, "JSON object"),
    ],
)
def test_every_write_is_validated(client, tmp_path, path, body, status, message):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    with Journal(tmp_path / "j.sqlite") as journal:
        assert journal.answers() == []


def test_writes_must_be_json_from_the_same_origin(client):
    body = b'{"annotator": "a", "sample_id": "5", "label": 1}'
    response = client.post("/api/label", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 415  # a cross-site form cannot send JSON without CORS
    response = client.post("/api/label", content=b"{", headers={"content-type":
                                                                "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = client.post("/api/label", content=body, headers={
        "content-type": "application/json", "origin": "http://evil.example"})
    assert response.status_code == 403 and "origin" in response.json()["error"]
    response = client.get("/api/config", headers={"host": "evil.example"})
    assert response.status_code == 403  # DNS rebinding: only loopback names by default
    response = post(client, "/api/label", annotator="a", sample_id="5", label=truth("5"))
    assert response.status_code == 200
    assert post(client, "/api/label", annotator="a", sample_id="5", label=1).status_code == 409


def test_a_token_guards_every_request(tmp_path):
    app = make_app(digits_pool(), tmp_path / "j.sqlite", classes=list(range(10)),
                   token="s3cret-token", allowed_hosts=["*"])
    with TestClient(app, base_url="http://192.0.2.1") as c:
        assert c.get("/").status_code == 200  # the page itself holds no data
        for response in (c.get("/api/config"), c.get("/api/image/0"),
                         post(c, "/api/label", annotator="a", sample_id="0", label=0),
                         c.get("/api/config", headers={"x-skal-token": "s3cret-tokem"})):
            assert response.status_code == 401, response.text
        headers = {"x-skal-token": "s3cret-token"}
        assert c.get("/api/config", headers=headers).status_code == 200
        assert c.get("/api/image/0", params={"token": "s3cret-token"}).status_code == 200
        response = c.post("/api/label", json={"annotator": "a", "sample_id": "0", "label": 0},
                          headers=headers)
        assert response.status_code == 200
    with pytest.raises(ValueError, match="token"):
        make_app(digits_pool(), tmp_path / "k.sqlite", classes=[0, 1], token="short")


def test_the_page_is_one_file_with_safe_headers(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<script>" in page and "src=\"http" not in page and "<link" not in page


def image_folder(tmp_path):
    from PIL import Image

    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    rng = np.random.RandomState(0)
    for name in ("a.png", "b.jpg", "sub/c.jpeg"):
        Image.fromarray(rng.randint(0, 255, (20, 30, 3), dtype=np.uint8)).save(root / name)
    (root / "notes.txt").write_text("not an image")
    secret = tmp_path / "secret.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(secret)
    os.symlink(secret, root / "link-out.png")  # a link out of the folder is no sample
    return root, secret


def test_image_folder_pool_never_serves_outside_the_folder(tmp_path):
    root, secret = image_folder(tmp_path)
    pool = load_pool(root, image_size=8)
    assert pool.sample_ids == ["a.png", "b.jpg", "sub/c.jpeg"]
    assert pool.X.shape == (3, 8 * 8 * 3) and 0 <= pool.X.min() and pool.X.max() <= 1
    app = make_app(pool, tmp_path / "j.sqlite", classes=["cat", "dog"], random_state=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        response = c.get("/api/image/1")
        assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
        assert response.content == (root / "b.jpg").read_bytes()
        for path in ("/api/image/3", "/api/image/-1", "/api/image/..%2F..%2Fsecret.png",
                     "/api/image/../../secret.png", "/api/image/%2e%2e/secret.png",
                     "/secret.png", "/../secret.png", "/api/image/link-out.png"):
            response = c.get(path)
            assert response.status_code == 404, path
            assert response.content != secret.read_bytes()
        # A file swapped for a link out of the folder after loading is not read either.
        os.remove(root / "a.png")
        os.symlink(secret, root / "a.png")
        assert c.get("/api/image/0").status_code == 404
        sample = c.get("/api/next", params={"annotator": "ann"}).json()["sample"]
        assert sample["kind"] == "image" and sample["id"] in pool.sample_ids


def test_csv_text_and_npy_pools(tmp_path):
    (tmp_path / "pool.csv").write_text("id,x1,x2,note\np0,1.5,2,first\np1,-1,0.5,second\n")
    pool = load_pool(tmp_path / "pool.csv")
    assert pool.sample_ids == ["p0", "p1"] and pool.X.tolist() == [[1.5, 2.0], [-1.0, 0.5]]
    assert pool.payload(1) == {"kind": "fields", "fields": [
        ["id", "p1"], ["x1", "-1"], ["x2", "0.5"], ["note", "second"]]}
    (tmp_path / "pool.txt").write_text("a good film\n\nawful, just awful\n")
    pool = load_pool(tmp_path / "pool.txt")
    assert pool.sample_ids == ["0", "2"] and pool.X.shape == (2, 4096)
    assert pool.payload(1) == {"kind": "text", "text": "awful, just awful"}
    np.save(tmp_path / "images.npy", np.arange(2 * 3 * 28 * 28).reshape(2, 3, 28, 28) % 7)
    pool = load_pool(tmp_path / "images.npy")  # (n, channels, h, w) shown channels-last
    assert pool.items.shape == (2, 28, 28, 3) and pool.X.shape == (2, 3 * 28 * 28)
    data, media_type = pool.image(1)
    assert media_type == "image/png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="shape"):
        pool_from_images(np.zeros((2, 3)))
    with pytest.raises(FileNotFoundError):
        load_pool(tmp_path / "missing.csv")


def test_mnist_folder_pool(mnist_dir):
    pool = load_pool(mnist_dir)
    assert len(pool) == 10000 and pool.X.shape == (10000, 784) and pool.kind == "image"
    assert pool.image(0)[0][:4] == b"\x89PNG"


def test_two_annotators_never_hold_the_same_sample(tmp_path):
    app = make_app(digits_pool(), tmp_path / "j.sqlite", classes=list(range(10)),
                   batch_size=3, random_state=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        held = {name: shown(c.get("/api/next", params={"annotator": name}))
                for name in ("ann", "bob", "cy")}
        assert len(set(held.values())) == 3
        for step in range(12):
            name = ("ann", "bob", "cy")[step % 3]
            sid = held[name]
            response = post(c, "/api/label", annotator=name, sample_id=sid, label=truth(sid))
            held[name] = shown(response)
            assert len(set(held.values())) == 3, (step, held)
        with Journal(tmp_path / "j.sqlite") as journal:
            answers = journal.answers()
    assert len(answers) == 12 and len({a["sample_id"] for a in answers}) == 12


def test_labels_per_sample_asks_the_second_annotator_for_the_first_ones_samples(tmp_path):
    journal = tmp_path / "j.sqlite"
    app = make_app(digits_pool(), journal, classes=list(range(10)), batch_size=3,
                   labels_per_sample=2, random_state=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        sid = shown(c.get("/api/next", params={"annotator": "ann"}))
        by_ann = []
        for _ in range(3):
            by_ann.append(sid)
            sid = shown(post(c, "/api/label", annotator="ann", sample_id=sid, label=truth(sid)))
        sid = shown(c.get("/api/next", params={"annotator": "bob"}))
        by_bob = []
        for i in range(3):
            by_bob.append(sid)
            label = truth(sid) if i else (truth(sid) + 1) % 10  # bob disagrees once
            sid = shown(post(c, "/api/label", annotator="bob", sample_id=sid, label=label))
    assert by_bob == by_ann
    with LabelingSession(None, digits_pool().X, journal, classes=list(range(10))) as session:
        counts = {}
        for a in session.annotations():
            counts[a["sample_id"]] = counts.get(a["sample_id"], 0) + 1
    assert counts == {s: 2 for s in by_ann}


def test_guess_and_learning_curve(tmp_path):
    app = make_app(digits_pool(), tmp_path / "j.sqlite", classes=list(range(10)),
                   batch_size=5, random_state=0, show_guess=True,
                   held_out=(X_DIGITS[1000:1300], Y_DIGITS[1000:1300]), budget=12)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        data = c.get("/api/next", params={"annotator": "ann"}).json()
        assert data["sample"]["guess"] is None and data["curve"] == []
        for _ in range(12):
            sid = data["sample"]["id"]
            data = post(c, "/api/label", annotator="ann", sample_id=sid,
                        label=truth(sid)).json()
        assert data["done"] is True and data["sample"] is None  # the budget is reached
        app.state.desk.watcher_.close()  # wait for the last fits
        data = c.get("/api/next", params={"annotator": "ann"}).json()
        guess = app.state.call(app.state.desk.watcher_.guess, 0)
    assert guess["label"] in range(10) and 0 <= guess["uncertainty"] <= 1
    n_labels = [n for n, _ in data["curve"]]
    assert n_labels == sorted(n_labels) and n_labels[-1] == 12
    assert all(0 <= accuracy <= 1 for _, accuracy in data["curve"])


def test_bad_parameters_are_clear_errors(tmp_path):
    journal = tmp_path / "j.sqlite"
    with pytest.raises(TypeError, match="pool must be"):
        make_app(X_DIGITS, journal, classes=[0, 1])
    with pytest.raises(ValueError, match="keys"):
        make_app(digits_pool(), journal, classes=[0, 1], keys=["s", "t"])
    with pytest.raises(ValueError, match="budget"):
        make_app(digits_pool(), journal, classes=[0, 1], budget=0)
    with pytest.raises(TypeError, match="show_guess"):
        make_app(digits_pool(), journal, classes=[0, 1], show_guess="yes")
    with pytest.raises(ValueError, match="held_out"):
        make_app(digits_pool(), journal, classes=[0, 1], held_out=(X_DIGITS[:5], [7] * 5))
    with pytest.raises(ValueError, match="labels_per_sample"):
        make_app(digits_pool(), journal, classes=[0, 1], labels_per_sample=0)
    with pytest.raises(TypeError, match="allowed_hosts"):
        make_app(digits_pool(), journal, classes=[0, 1], allowed_hosts="localhost")
    with pytest.raises(ValueError, match="port"):
        serve(None, port=70000)
    assert not journal.exists()
    assert default_keys(["cat", "dog"]) == ["1", "2"]
    assert default_keys(list("abc")) == ["a", "b", "c"]
    assert default_keys(["s", "t"]) == ["1", "2"]  # s is skip
    assert check_keys("xy", ["cat", "dog"]) == ["x", "y"]


def test_next_batch_exclude(tmp_path):
    X = np.random.RandomState(0).normal(size=(30, 2))
    with LabelingSession(None, X, tmp_path / "j.sqlite", classes=[0, 1], batch_size=4,
                         random_state=0) as session:
        batch = [q.sample_id for q in session.next_batch()]
        assert [q.sample_id for q in session.next_batch(exclude=batch[:2])] == batch[2:]
        fresh = [q.sample_id for q in session.next_batch(exclude=batch)]
        assert len(fresh) == 4 and not set(fresh) & set(batch)
        with pytest.raises(TypeError, match="exclude"):
            session.next_batch(exclude="12")
        with pytest.raises(UnknownSampleError, match="exclude"):
            session.next_batch(exclude=["nope"])


def test_import_skal_does_not_import_the_web_libraries():
    code = ("import sys, skal, skal.labeling, skal.labeling._cli; "
            "bad = sorted({'starlette', 'uvicorn', 'PIL', 'selenium'} & set(sys.modules)); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_held_out_files_and_command_line_errors(tmp_path, capsys):
    from skal._cli import main
    from skal.labeling._webcli import load_held_out

    (tmp_path / "held.csv").write_text("id,x1,x2,label\nh0,1,2,cat\nh1,3,4,dog\n")
    X, y = load_held_out(str(tmp_path / "held.csv"))
    assert X.tolist() == [[1.0, 2.0], [3.0, 4.0]] and y.tolist() == ["cat", "dog"]
    np.savez(tmp_path / "held.npz", X=np.ones((3, 2, 2)), y=[0, 1, 0])
    X, y = load_held_out(str(tmp_path / "held.npz"))
    assert X.shape == (3, 4) and y.tolist() == [0, 1, 0]
    np.savez(tmp_path / "bad.npz", X=np.ones((3, 2)))
    (tmp_path / "pool.csv").write_text("id,x1,x2\np0,1,2\np1,3,4\n")
    journal = tmp_path / "j.sqlite"
    common = ["label", str(tmp_path / "pool.csv"), "--web", "--journal", str(journal),
              "--classes", "cat,dog"]
    cases = [
        (["--port", "70000"], "--port must be"),
        (["--held-out", str(tmp_path / "bad.npz")], "arrays named X and y"),
        (["--held-out", str(tmp_path / "missing.npz")], "no file"),
        (["--export", str(tmp_path / "out.txt")], "*.csv or *.json"),
        (["--keys", "s1"], "reserved"),
        (["--resume"], "no journal"),
    ]
    for extra, message in cases:
        assert main(common + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("skal label: error: ") and message in err, err
    assert not journal.exists()


def test_the_page_passes_on_the_stopping_advice(tmp_path):
    from skal import ActiveLearner
    from skal.stopping import UncertaintyThreshold

    # a threshold every model meets: the advice appears once a model exists
    learner = ActiveLearner(stopping=UncertaintyThreshold(threshold=10.0))
    app = make_app(digits_pool(), tmp_path / "j.sqlite", classes=list(range(10)),
                   learner=learner, batch_size=4, random_state=0)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        data = c.get("/api/next", params={"annotator": "ann"}).json()
        assert "stop" not in data
        for _ in range(6):
            sid = data["sample"]["id"]
            data = post(c, "/api/label", annotator="ann", sample_id=sid,
                        label=truth(sid)).json()
        app.state.desk.watcher_.close()  # wait for the last fit
        data = c.get("/api/next", params={"annotator": "ann"}).json()
    assert data["stop"].startswith("UncertaintyThreshold: the largest uncertainty")
    assert data["sample"] is not None  # advice only: labelling goes on
