"""``skal label --web``: label a pool in a browser. A Starlette app, served by uvicorn, over
the annotators' sessions (``_desk.py``); every write is checked, then answered only after its
journal commit. Starlette and uvicorn are imported only inside the functions here."""

import contextlib
import hmac
import ipaddress
import json
import secrets
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from skal.labeling._desk import READER, Desk, check_held_out, check_keys
from skal.labeling._journal import AlreadyAnsweredError, JournalError
from skal.labeling._pools import Pool
from skal.labeling._session import UnknownSampleError
from skal.labeling._validation import (
    check_annotator,
    check_bool,
    check_classes,
    check_positive_int,
)

_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "[::1]"}
_MAX_NAME = 64


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
    if not name or len(name) > _MAX_NAME or not name.isprintable() or name == READER:
        raise _HTTPError(
            422, f"annotator must be a printable name of 1 to {_MAX_NAME} characters (not "
            f"{READER!r}), got {value!r}."
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
    import asyncio

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
    held_out = check_held_out(held_out, pool, classes)
    if token is not None and (not isinstance(token, str) or len(token) < 8):
        raise ValueError("token must be None or a string of at least 8 characters.")
    if allowed_hosts is not None and (
            isinstance(allowed_hosts, str)
            or not all(isinstance(h, str) and h for h in allowed_hosts)):
        raise TypeError(
            f"allowed_hosts must be None or a list of host names (['*'] for any), got "
            f"{allowed_hosts!r}."
        )
    hosts = _LOOPBACK_NAMES if allowed_hosts is None else set(allowed_hosts)
    session_params = dict(
        learner=learner, classes=classes, sample_ids=pool.sample_ids, batch_size=batch_size,
        query_ahead=query_ahead, labels_per_sample=labels_per_sample, aggregate=aggregate,
        requery_disagreements=requery_disagreements, random_state=random_state,
        timeout=timeout,
    )
    desk = Desk(pool, journal, session_params, budget, show_guess, held_out, keys)
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
    if not isinstance(host, str) or not host:
        raise TypeError(f"host must be a non-empty string, got {host!r}.")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an int from 0 to 65535, got {port!r}.")
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
