"""``skal label --web``: label a pool in a browser. A Starlette app, served by uvicorn, over
one :class:`~skal.labeling.LabelingSession` per annotator on one shared journal; every write is
answered only after its journal commit. Starlette and uvicorn are imported only here."""

import asyncio
import contextlib
import hmac
import ipaddress
import json
import secrets
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

import numpy as np
from sklearn.base import clone

from skal.labeling._journal import AlreadyAnsweredError, JournalError, encode_label
from skal.labeling._pools import Pool
from skal.labeling._session import LabelingSession, UnknownSampleError
from skal.labeling._validation import (
    check_annotator,
    check_bool,
    check_classes,
    check_positive_int,
)
from skal.learners._base import seed_estimator
from skal.strategies._base import take_rows

RESERVED_KEYS = ("s", "u", "?")
_DEFAULT_KEYS = "1234567890abcdefghijklmnoprtvwxyz"
_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
# A sample shown to an annotator who then goes away is offered to others after this long.
HOLD_SECONDS = 600.0
_MAX_NAME = 64
_READER = "skal-web"  # the session that only reads (progress, labels, the learning curve)


def default_keys(classes):
    """One key per class: the class itself when every class is one character (the digits
    0-9 of MNIST are typed as themselves), else 1, 2, ..., 9, 0, a, b, ..."""
    texts = [str(c) for c in classes]
    if all(len(t) == 1 for t in texts) and not set(texts) & set(RESERVED_KEYS):
        return texts
    if len(texts) > len(_DEFAULT_KEYS):
        raise ValueError(
            f"{len(texts)} classes need more than the {len(_DEFAULT_KEYS)} default keys; "
            "pass keys."
        )
    return list(_DEFAULT_KEYS[: len(texts)])


def check_keys(keys, classes):
    """The keys of the classes, one single character each, distinct, none reserved."""
    keys = default_keys(classes) if keys is None else list(keys)
    if len(keys) != len(classes) or not all(isinstance(k, str) and len(k) == 1 for k in keys):
        raise ValueError(
            f"keys must give one single-character key per class ({len(classes)} classes), "
            f"got {keys!r}."
        )
    if len(set(keys)) != len(keys) or set(keys) & set(RESERVED_KEYS):
        raise ValueError(
            f"keys must be distinct and avoid the reserved keys {list(RESERVED_KEYS)} (skip, "
            f"undo, help), got {keys!r}."
        )
    return keys


def _check_held_out(held_out, pool, classes):
    if held_out is None:
        return None
    if not (isinstance(held_out, tuple | list) and len(held_out) == 2):
        raise TypeError("held_out must be None or a pair (X_test, y_test).")
    X_test, y_test = held_out
    y_test = np.asarray(y_test)
    if y_test.ndim != 1 or len(y_test) != len(X_test) or len(y_test) == 0:
        raise ValueError(
            f"held_out must be (X_test, y_test) with one label per row; got {len(X_test)} "
            f"rows and labels of shape {y_test.shape}."
        )
    n_features = np.shape(pool.X)[1]
    if np.shape(X_test)[1:] != np.shape(pool.X)[1:]:
        raise ValueError(
            f"held_out's X_test has rows of shape {np.shape(X_test)[1:]}, the pool's "
            f"{np.shape(pool.X)[1:]} ({n_features} features)."
        )
    if isinstance(classes[0], str):
        y_test = y_test.astype(str)
    known = {encode_label(c) for c in classes}
    unknown = sorted({str(v) for v in y_test.tolist() if encode_label(v) not in known})
    if unknown:
        raise ValueError(f"held_out's labels {unknown[:5]} are not among the classes {classes}.")
    return X_test, y_test


class _ModelWatcher:
    """Refits the learner on the current labels in a background thread, for the model's
    guess on the sample shown and the learning curve on the held-out set; never in the way
    of an answer (the page shows the latest finished fit)."""

    def __init__(self, learner, seed, X, held_out):
        self.learner = learner
        self.seed = seed
        self.X = X
        self.held_out = held_out

    def start(self):
        self.model_ = None
        self.curve_ = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skal-web-model")
        self._running = False
        self._wanted = None
        self._done_key = None

    def refresh(self, positions, labels):
        """Ask for a fit on these labels (called from the session thread)."""
        key = (tuple(positions), tuple(encode_label(v) for v in labels))
        if key == self._done_key or len(set(key[1])) < 2:
            return
        self._wanted = (key, positions, labels)
        if not self._running:
            self._running = True
            self._executor.submit(self._work)

    def _work(self):
        try:
            while self._wanted is not None:
                (key, positions, labels), self._wanted = self._wanted, None
                model = seed_estimator(clone(self.learner), self.seed, overwrite=False)
                model.fit(take_rows(self.X, np.asarray(positions, dtype=np.intp)),
                          np.asarray(labels))
                if self.held_out is not None:
                    score = round(float(model.score(*self.held_out)), 4)
                    # One point per number of labels, the latest fit's (undo goes back).
                    points = dict(self.curve_)
                    points[len(positions)] = score
                    self.curve_ = sorted(points.items())
                self.model_, self._done_key = model, key
        finally:
            self._running = False
            if self._wanted is not None:  # asked for during the last fit's final moments
                self._running = True
                self._executor.submit(self._work)

    def guess(self, index):
        model = self.model_
        if model is None or not hasattr(model, "predict_proba"):
            return None
        proba = model.predict_proba(take_rows(self.X, np.array([index])))[0]
        best = int(np.argmax(proba))
        label = model.classes_[best]
        return {"label": label.item() if isinstance(label, np.generic) else label,
                "uncertainty": round(1.0 - float(proba[best]), 4)}

    def close(self):
        self._executor.shutdown(wait=True, cancel_futures=True)


class _Desk:
    """The annotators' sessions and the samples they hold. Every method runs in one thread
    (SQLite connections belong to the thread that opened them)."""

    def __init__(self, pool, journal, session_params, budget, show_guess, held_out, keys):
        self.pool = pool
        self.journal = journal
        self.session_params = session_params
        self.budget = budget
        self.show_guess = show_guess
        self.held_out = held_out
        self.keys = keys

    def open(self):
        self._sessions = {}
        self._holds = {}  # annotator -> (sample id, since)
        self._redo = {}  # annotator -> undone sample ids, latest last
        params = dict(self.session_params, query_ahead=False)
        self.reader_ = LabelingSession(self.session_params["learner"], self.pool.X,
                                       self.journal, annotator=_READER,
                                       **{k: v for k, v in params.items() if k != "learner"})
        self._position = {sid: i for i, sid in enumerate(self.pool.sample_ids)}
        self.classes_ = self.reader_.classes_
        self.budget_ = len(self.pool) if self.budget is None else self.budget
        self.watcher_ = None
        if self.show_guess or self.held_out is not None:
            self.watcher_ = _ModelWatcher(self.reader_.learner, self.reader_.seed_, self.pool.X,
                                          self.held_out)
            self.watcher_.start()
            self._refresh_model()
        return self

    def config(self):
        return {
            "classes": self.classes_,
            "keys": self.keys,
            "budget": self.budget_,
            "n_samples": len(self.pool),
            "show_guess": self.show_guess,
            "curve": self.held_out is not None,
            "picked_by": self.reader_.picked_by,
            "labels_per_sample": self.reader_.labels_per_sample,
        }

    def _session(self, name):
        session = self._sessions.get(name)
        if session is None:
            params = dict(self.session_params)
            learner = params.pop("learner")
            # The stored seed: an int given for a new journal is already in it.
            params["random_state"] = None
            session = LabelingSession(learner, self.pool.X, self.journal, annotator=name,
                                      **params)
            self._sessions[name] = session
        return session

    def _held_by_others(self, name):
        now = time.monotonic()
        return {sid for who, (sid, since) in self._holds.items()
                if who != name and now - since < HOLD_SECONDS}

    def _mine(self, name):
        return {a["sample_id"] for a in self._session(name).annotations()
                if a["annotator"] == name}

    def current(self, name):
        """The sample ``name`` holds (the same after a page reload), else the next one."""
        held = self._holds.get(name)
        if held is not None and held[0] not in self._mine(name):
            self._holds[name] = (held[0], time.monotonic())
            return self._state(name, held[0], "shown before")
        return self._advance(name)

    def _advance(self, name):
        session = self._session(name)
        self._holds.pop(name, None)
        if session.n_labels_ >= self.budget_:
            return self._state(name, None, done=True)
        mine = self._mine(name)
        redo = self._redo.setdefault(name, [])
        while redo and redo[-1] in mine:
            redo.pop()
        if redo:
            sample_id, why = redo[-1], "undone"
        else:
            others = self._held_by_others(name)
            batch = session.next_batch(exclude=others)
            if not batch:
                return self._state(name, None, done=not others)
            query = batch[0]
            sample_id = query.sample_id
            why = query.strategy if query.score is None else (
                f"{query.strategy}, score {query.score:.3g}")
        self._holds[name] = (sample_id, time.monotonic())
        return self._state(name, sample_id, why)

    def _state(self, name, sample_id, why=None, done=False):
        session = self._session(name)
        out = {
            "annotator": name,
            "progress": {"labelled": session.n_labels_, "budget": self.budget_},
            "done": done,
            "waiting": sample_id is None and not done,
            "sample": None,
        }
        if self.held_out is not None:
            out["curve"] = self.watcher_.curve_
        if sample_id is not None:
            index = self._position[sample_id]
            sample = {"id": sample_id, "why": why, **self.pool.payload(index)}
            if self.show_guess:
                sample["guess"] = self.watcher_.guess(index)
            out["sample"] = sample
        return out

    def answer(self, name, sample_id, label, skipped):
        session = self._session(name)
        if skipped:
            answer_id = session.skip(sample_id)
        else:
            answer_id = session.label(sample_id, label)
        # Committed: from here on the answer survives a crash.
        self._refresh_model()
        out = self._advance(name)
        out["saved"] = {"sample_id": sample_id, "label": None if skipped else label,
                        "skipped": skipped, "answer_id": answer_id}
        return out

    def undo(self, name):
        undone = self._session(name).undo()
        if undone is None:
            out = self.current(name)
        else:
            self._redo.setdefault(name, []).append(undone)
            self._refresh_model()
            out = self._advance(name)
        out["undone"] = undone
        return out

    def _refresh_model(self):
        if self.watcher_ is None:
            return
        labels = self.reader_.labels()
        self.watcher_.refresh([self._position[s] for s in labels], list(labels.values()))

    def close(self):
        if getattr(self, "watcher_", None) is not None:
            self.watcher_.close()
        for session in getattr(self, "_sessions", {}).values():
            session.close()
        if getattr(self, "reader_", None) is not None:
            self.reader_.close()


class _HTTPError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _check_name(value):
    try:
        name = check_annotator(value)
    except (TypeError, ValueError) as exc:
        raise _HTTPError(422, str(exc)) from None
    name = name.strip()
    if not name or len(name) > _MAX_NAME or not name.isprintable() or name == _READER:
        raise _HTTPError(
            422, f"annotator must be a printable name of 1 to {_MAX_NAME} characters (not "
            f"{_READER!r}), got {value!r}."
        )
    return name


def is_loopback(host):
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_app(pool, journal, *, classes, learner=None, batch_size=None, query_ahead=False,
             labels_per_sample=1, aggregate="majority", requery_disagreements=False,
             random_state=None, budget=None, show_guess=False, held_out=None, keys=None,
             token=None, allowed_hosts=None, timeout=30.0):
    """The web labelling app: an ASGI application (Starlette) to serve with uvicorn.

    Each annotator names themself on the page; their answers go through a
    :class:`~skal.labeling.LabelingSession` of their own on the shared ``journal``, so
    ``labels_per_sample``, ``aggregate`` and ``requery_disagreements`` work as in the Python
    API. A sample shown to one annotator is not shown to another meanwhile. The journal is
    opened (and checked) at once, in the thread that serves every session call.

    Parameters
    ----------
    pool : Pool
        From :func:`~skal.labeling.load_pool` or :func:`~skal.labeling.pool_from_images`.
    journal : str or path-like
        The session's journal; created when missing, resumed when present.
    classes : sequence of str or int
        The label set, as for :class:`~skal.labeling.LabelingSession`.
    learner, batch_size, query_ahead, labels_per_sample, aggregate, requery_disagreements, \
random_state, timeout
        As for :class:`~skal.labeling.LabelingSession`.
    budget : int, default=None
        The page stops offering samples once this many are labelled; ``None``: the pool.
    show_guess : bool, default=False
        Show the model's guess and its uncertainty (1 - top probability) next to the sample.
        Off by default, so that it does not bias annotators.
    held_out : (X_test, y_test) or None, default=None
        Labelled rows to score the model on after each answer: a live learning curve.
    keys : sequence of str, default=None
        One key per class; ``None``: the class itself when every class is one character,
        else 1, 2, 3, ...; ``s`` (skip), ``u`` (undo) and ``?`` are reserved.
    token : str, default=None
        When given, every API request must carry it (header ``X-Skal-Token``); required
        when the server listens beyond the loopback interface.
    allowed_hosts : sequence of str, default=None
        Host names the requests may be addressed to (against DNS rebinding); ``None``: the
        loopback names only; ``["*"]``: any.

    Returns
    -------
    app : starlette.applications.Starlette
        ``app.state.desk`` holds the sessions, ``app.state.call(func, *args)`` runs
        ``func`` in their thread; they are closed at the app's shutdown.
    """
    from starlette.applications import Starlette
    from starlette.responses import HTMLResponse, JSONResponse, Response
    from starlette.routing import Route

    if not isinstance(pool, Pool):
        raise TypeError(
            f"pool must be a skal.labeling.Pool (from load_pool or pool_from_images), got "
            f"{type(pool).__name__}."
        )
    classes = check_classes(classes)
    keys = check_keys(keys, classes)
    if budget is not None:
        budget = check_positive_int(budget, "budget")
    show_guess = check_bool(show_guess, "show_guess")
    held_out = _check_held_out(held_out, pool, classes)
    if token is not None and (not isinstance(token, str) or len(token) < 8):
        raise ValueError("token must be None or a string of at least 8 characters.")
    hosts = _LOOPBACK_NAMES if allowed_hosts is None else set(allowed_hosts)
    session_params = dict(
        learner=learner, classes=classes, sample_ids=pool.sample_ids, batch_size=batch_size,
        query_ahead=query_ahead, labels_per_sample=labels_per_sample, aggregate=aggregate,
        requery_disagreements=requery_disagreements, random_state=random_state,
        timeout=timeout,
    )
    desk = _Desk(pool, journal, session_params, budget, show_guess, held_out, keys)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="skal-web-sessions")
    try:
        executor.submit(desk.open).result()
    except BaseException:
        executor.submit(desk.close).result()
        executor.shutdown()
        raise
    page = resources.files("skal.labeling").joinpath("web/index.html").read_bytes()
    page_headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "DENY",  # a framing page could steal key presses
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; "
        "frame-ancestors 'none'",
        "X-Content-Type-Options": "nosniff",
    }

    def guard(request, write):
        host = request.headers.get("host", "")
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if "*" not in hosts and hostname not in hosts:
            raise _HTTPError(403, f"Requests to host {host!r} are refused (DNS rebinding?).")
        if token is not None:
            given = request.headers.get("x-skal-token") or request.query_params.get("token")
            if not given or not hmac.compare_digest(given.encode(), token.encode()):
                raise _HTTPError(401, "This server needs its token (printed in its terminal).")
        if write:
            origin = request.headers.get("origin")
            if origin is not None and origin.split("://", 1)[-1] != host:
                raise _HTTPError(403, f"Writes from the origin {origin!r} are refused.")
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                raise _HTTPError(415, "Writes must be JSON (Content-Type: application/json).")

    async def run(func, *args):
        return await asyncio.get_running_loop().run_in_executor(executor, func, *args)

    def error(status, message):
        return JSONResponse({"error": message}, status_code=status)

    async def body_of(request):
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise _HTTPError(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "The request body must be a JSON object.")
        return body

    def endpoint(write):
        def wrap(handler):
            async def handle(request):
                try:
                    guard(request, write)
                    return await handler(request)
                except _HTTPError as exc:
                    return error(exc.status, str(exc))
                except UnknownSampleError as exc:
                    return error(422, str(exc))
                except AlreadyAnsweredError as exc:
                    return error(409, str(exc))
                except JournalError as exc:
                    return error(503, str(exc))

            return handle

        return wrap

    async def index(request):
        return HTMLResponse(page, headers=page_headers)

    @endpoint(write=False)
    async def config(request):
        return JSONResponse(await run(desk.config))

    @endpoint(write=False)
    async def next_sample(request):
        name = _check_name(request.query_params.get("annotator"))
        return JSONResponse(await run(desk.current, name))

    def sample_of(body):
        sample_id = body.get("sample_id")
        if not isinstance(sample_id, str):
            raise _HTTPError(422, f"sample_id must be a string, got {sample_id!r}.")
        if sample_id not in desk._position:
            raise _HTTPError(422, f"sample_id {sample_id!r} is not in the pool.")
        return sample_id

    @endpoint(write=True)
    async def label(request):
        body = await body_of(request)
        name, sample_id = _check_name(body.get("annotator")), sample_of(body)
        value = body.get("label")
        if not any(type(value) is type(c) and value == c for c in classes):
            raise _HTTPError(422, f"label {value!r} is not one of the classes {classes}.")
        return JSONResponse(await run(desk.answer, name, sample_id, value, False))

    @endpoint(write=True)
    async def skip(request):
        body = await body_of(request)
        name, sample_id = _check_name(body.get("annotator")), sample_of(body)
        return JSONResponse(await run(desk.answer, name, sample_id, None, True))

    @endpoint(write=True)
    async def undo(request):
        body = await body_of(request)
        return JSONResponse(await run(desk.undo, _check_name(body.get("annotator"))))

    @endpoint(write=False)
    async def image(request):
        index = request.path_params["index"]
        if not 0 <= index < len(pool):
            raise _HTTPError(404, f"No sample {index} in the pool.")
        try:
            data, media_type = pool.image(index)
        except FileNotFoundError as exc:
            raise _HTTPError(404, str(exc)) from None
        return Response(data, media_type=media_type,
                        headers={"Cache-Control": "private, max-age=3600",
                                 "X-Content-Type-Options": "nosniff"})

    closed = []

    def shutdown():
        if not closed:
            closed.append(True)
            executor.submit(desk.close).result()
            executor.shutdown()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            shutdown()

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/config", config),
            Route("/api/next", next_sample),
            Route("/api/label", label, methods=["POST"]),
            Route("/api/skip", skip, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
            Route("/api/image/{index:int}", image),
        ],
        lifespan=lifespan,
    )
    app.state.desk = desk
    app.state.close = shutdown
    # For callers outside the server: the sessions may only be used from their thread.
    app.state.call = lambda func, *args: executor.submit(func, *args).result()
    return app


def serve(app, host="127.0.0.1", port=8000, *, announce=print):
    """Serve ``app`` with uvicorn until Ctrl-C or SIGTERM.

    Parameters
    ----------
    app : ASGI application
        From :func:`make_app`.
    host : str, default="127.0.0.1"
    port : int, default=8000
        0 picks a free port.
    announce : callable, default=print
        Called with the address once the socket listens.
    """
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family)
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    announce(f"http://{shown}:{bound_port}/")
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))

    def stop(signum, frame):
        raise KeyboardInterrupt

    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: both
    # end here, so the caller can export and say goodbye.
    previous = signal.signal(signal.SIGTERM, stop)
    # While a query-ahead thread fits a model, the server's thread waits for the GIL at each
    # of its many small steps; a shorter switch interval cuts that wait (measured in
    # benchmarks/bench_web_latency.py).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sys.setswitchinterval(interval)
        signal.signal(signal.SIGTERM, previous)
        sock.close()


def new_token():
    """A random token for an exposed server (shown once, never stored)."""
    return secrets.token_urlsafe(18)
