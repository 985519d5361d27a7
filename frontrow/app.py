"""The Starlette application: routes, error handlers and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import logging
import zlib
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from frontrow import catalog, logs, metrics, observe, openapi, pace, ratelimit, server
from frontrow.admin import routes as admin_routes
from frontrow.auth import new_user_id
from frontrow.booking import holds
from frontrow.booking.routes import routes as booking_routes
from frontrow.config import Settings
from frontrow.errors import BACKEND_ERRORS, backend_unavailable, exception_handlers, not_found
from frontrow.http import GZIP_LEVEL, GZIP_MIN_BYTES, JSONResponse, client_address, store_of
from frontrow.observe import STATUS, Observe
from frontrow.queue.core import sales
from frontrow.queue.fastpoll import FastPoll
from frontrow.queue.routes import routes as queue_routes
from frontrow.router import Router
from frontrow.schedulers import loops
from frontrow.store import Store, open_store
from frontrow.wallet.routes import routes as wallet_routes

log = logging.getLogger("frontrow")
READY_TIMEOUT_S = 2.0
GC_THRESHOLD = (50_000, 20, 20)
WEB = files("frontrow") / "web"
PAGE_POLICY = b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"


class Outgoing:
    """Every answer's last touch, in one pass over its messages: an exception
    the app's handlers answer (errors.exception_handlers, by type) made that
    answer, nosniff on every answer and the page's policy on every HTML one,
    whichever path serves it (/ and /static/index.html alike), and gzip for a
    body of GZIP_MIN_BYTES or more when the client takes it (a body already
    encoded, as a kept seat map is, passes as it is). Starlette's GZip, a
    headers middleware and its ExceptionMiddleware were three wrappers of
    every send (and a Request a request): 9 % of an order's CPU in the app
    for the first two (python -m bench.orderpath), 2 % of its instructions
    for the third (`bench.orderpath --instructions`). The headers are read
    and set on the message's own list (ASGI names are lower case):
    Starlette's MutableHeaders parsed them again for each read, ~3 % of an
    order's instructions in the app. The poll's fast path and problem bodies
    set their own headers (errors.problem_response). The answer's status
    goes in the scope as it starts, for Observe (a wrapper of its own of
    every send was ~0.6 % of an order's instructions); an exception with no
    handler, or raised once the answer has started, goes on to
    ServerErrorMiddleware."""

    def __init__(self, app: Any, handlers: dict[type[BaseException], Any]) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gzip_ok = False
        for name, value in scope["headers"]:
            if name == b"accept-encoding" and b"gzip" in value:
                gzip_ok = True
                break
        start: Any = None  # a start held until the body shows whether to compress
        packer: Any = None  # zlib's, for a body that comes in parts

        async def outgoing(message: Any) -> None:
            nonlocal start, packer
            kind = message["type"]
            if kind == "http.response.start":
                scope[STATUS] = message["status"]
                raw = message["headers"] = list(message.get("headers", ()))
                content_type, encoded = b"", False
                for name, value in raw:
                    if name == b"content-type":
                        content_type = value
                    elif name == b"content-encoding":
                        encoded = True
                _put(raw, b"x-content-type-options", b"nosniff")
                if content_type.startswith(b"text/html"):
                    _put(raw, b"content-security-policy", PAGE_POLICY)
                    _put(raw, b"x-frame-options", b"DENY")
                    _put(raw, b"cache-control", b"no-cache")
                if gzip_ok and not encoded:
                    start = message
                    return
            elif kind == "http.response.body" and start is not None:
                body, more = message.get("body", b""), message.get("more_body", False)
                if packer is None and not more and len(body) < GZIP_MIN_BYTES:
                    await send(start)
                    start = None
                    await send(message)
                    return
                headers = MutableHeaders(scope=start)
                if packer is None:
                    headers["Content-Encoding"] = "gzip"
                    headers.add_vary_header("Accept-Encoding")
                    if not more:  # whole: compressed in one go, its length known
                        body = gzip.compress(body, GZIP_LEVEL, mtime=0)
                        headers["Content-Length"] = str(len(body))
                        await send(start)
                        await send({"type": kind, "body": body})
                        return
                    del headers["Content-Length"]
                    packer = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
                    await send(start)
                body = packer.compress(body) + (b"" if more else packer.flush())
                await send({"type": kind, "body": body, "more_body": more})
                return
            await send(message)

        try:
            await self.app(scope, receive, outgoing)
        except Exception as exc:
            handler = next(
                (self.handlers[t] for t in type(exc).__mro__ if t in self.handlers), None
            )
            if handler is None or STATUS in scope:  # unanswerable, or answered in part
                raise
            answer = await handler(Request(scope, receive), exc)
            await answer(scope, receive, outgoing)


def _put(headers: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """Set a header on a raw list: in place of any it had (MutableHeaders' rule)."""
    headers[:] = [(n, v) for n, v in headers if n != name]
    headers.append((name, value))


LANGUAGES = ("ko", "en")


def page_language(request: Request) -> str:
    """The page's language, chosen as its script chooses it (web/i18n.js):
    ?lang=, else the remembered choice (a cookie), else the first of Korean or
    English among the browser's languages by preference, else English."""
    for asked in (request.query_params.get("lang"), request.cookies.get("lang")):
        if asked in LANGUAGES:
            return asked
    ranked = []
    for position, item in enumerate(request.headers.get("accept-language", "")[:500].split(",")):
        tag, _, weight = item.strip().partition(";q=")
        try:
            q = float(weight) if weight else 1.0
        except ValueError:
            continue
        if tag[:2].lower() in LANGUAGES and q > 0:
            ranked.append((-q, position, tag[:2].lower()))
    return min(ranked)[2] if ranked else "en"


async def index(request: Request) -> Response:
    settings = store_of(request).settings
    demo = "1" if settings.demo_login else "0"
    abandon = int(settings.abandon_after_s)  # the page tells buyers how long they may be away
    page = (WEB / "index.html").read_text(encoding="utf-8")
    page = page.replace("<body>", f'<body data-demo-login="{demo}" data-abandon-s="{abandon}">', 1)
    if page_language(request) == "ko":  # the first paint, before any script, in Korean
        page = page.replace('<html lang="en">', '<html lang="ko">', 1)
        page = page.replace('<div data-paint="en">', '<div data-paint="en" hidden>', 1)
        page = page.replace('lang="ko" data-t-drop hidden>', 'lang="ko" data-t-drop>', 1)
    return HTMLResponse(page, headers={"Vary": "Accept-Language, Cookie"})


async def favicon(request: Request) -> Response:
    """The page names its icon (/static/icon.svg); this answers the browsers
    and tools that ask for /favicon.ico anyway, instead of a 404 a visit."""
    icon = (WEB / "icon.svg").read_bytes()
    return Response(icon, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    store = store_of(request)

    async def db_ping() -> None:
        async with store.db.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await store.redis.ping()
            await db_ping()
    except Exception as exc:  # any failure means "not ready", never a 500
        raise backend_unavailable(f"not ready: {type(exc).__name__}") from None
    return JSONResponse({"status": "ready"})


async def metrics_page(request: Request) -> Response:
    observe.flush()
    body, content_type = await metrics.exposition(store_of(request))
    return Response(body, media_type=content_type)


async def openapi_json(request: Request) -> Response:
    return JSONResponse(openapi.document(store_of(request).settings))


async def demo_login(request: Request) -> Response:
    store = store_of(request)
    if not store.settings.demo_login:
        raise not_found("demo login is disabled")
    limit = store.settings.demo_logins_per_ip
    await ratelimit.check_address(store, "demo", client_address(request), limit)
    user_id = new_user_id()
    token = store.tokens.user_token(user_id)
    return JSONResponse({"user_id": user_id, "access_token": token}, status_code=201)


async def list_concerts(request: Request) -> Response:
    store = store_of(request)
    concerts = await store.catalog.concerts()
    live = await sales(store, list(concerts.values()))
    listed = []
    for concert in concerts.values():
        upcoming = concert.upcoming()
        if concert.on_sale or upcoming:
            listed.append(
                {
                    "concert_id": concert.id,
                    "title": concert.title,
                    "venue": concert.venue,
                    "timezone": concert.timezone,
                    "dates": len(upcoming),
                    "open": concert.on_sale,
                    "sold_out": False,
                    **concert.sale.as_dict(),
                    **live.get(concert.id, {}),
                }
            )
    return JSONResponse({"concerts": listed}, headers={"Cache-Control": "public, max-age=5"})


class App(Starlette):
    """Starlette, with the poll's fast path in front of its middleware stack
    and a router that tries only the routes a path could match."""

    def __init__(self, *, routes: list[Any], lifespan: Any, **kwargs: Any) -> None:
        super().__init__(routes=routes, lifespan=lifespan, **kwargs)
        # Its redirect to the slash-less path is built from the Host header.
        self.router = Router(routes, lifespan=lifespan, redirect_slashes=False)

    def build_middleware_stack(self) -> Any:
        """Starlette's stack with Outgoing in place of its ExceptionMiddleware:
        ServerErrorMiddleware (the handler of Exception: a 500), the app's
        middleware, Outgoing (every other handler), the router; the poll's
        fast path in front of it all."""
        handlers = dict(self.exception_handlers)
        last_resort = handlers.pop(Exception, None)
        app: Any = Outgoing(self.router, handlers)
        for cls, args, kwargs in reversed(self.user_middleware):
            app = cls(app, *args, **kwargs)
        return FastPoll(ServerErrorMiddleware(app, handler=last_resort, debug=self.debug), self)


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    """Build the app; resources are opened in lifespan, never at import."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal store
        owned = store is None
        if store is None:
            store = open_store(settings or Settings.from_env())
            # uvicorn workers are fresh processes: each sets up its own logging and limits
            logs.configure(store.settings)
            server.Limits.configure(store.settings)
        if store.settings.embedded and owned:
            await catalog.migrate(store.db)
            await catalog.seed_demo(store.db)
        app.state.store = store
        if owned and store.statements is not None:
            store.statements.start()  # the money's connections, before any rush
        try:
            await holds.rebuild_all(store)
        except BACKEND_ERRORS as exc:
            # Not fatal: each date's copy is also loaded before its first hold.
            log.warning("could not rebuild the sold copy at start-up: %r", exc)
        stop = asyncio.Event()
        tasks = loops.start(store, stop) if store.settings.schedulers else []
        tasks.append(asyncio.create_task(pace.reporter(store, loops.owner_id(), stop)))
        tasks.append(asyncio.create_task(store.catalog.watch(stop)))
        tasks.append(asyncio.create_task(observe.flusher(stop)))
        if owned:
            # Start-up garbage is long-lived; freezing it keeps the collector's
            # pauses out of the poll's tail latency. A young generation of 700
            # objects (Python's default) has the collector run every few
            # requests: ~10 % of an order's CPU in the app (bench.orderpath).
            # Here, not in `frontrow serve`: uvicorn's workers are new
            # interpreters, which do not inherit the threshold.
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_THRESHOLD)
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if owned:
                await store.close()

    # Routes are tried in this order among those a path could match (Router).
    routes = [
        *booking_routes,
        *wallet_routes,
        *queue_routes,
        Route("/concerts", list_concerts, methods=["GET"]),
        Route("/auth/demo", demo_login, methods=["POST"]),
        Route("/", index, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(WEB)), name="static"),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        *admin_routes,
    ]
    app = App(
        routes=routes,
        middleware=[Middleware(Observe)],  # then Outgoing (App.build_middleware_stack)
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    return app
