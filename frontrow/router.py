"""The app's router: Starlette's, trying only the routes a path could match."""

from __future__ import annotations

import inspect
from typing import Any

from starlette import routing
from starlette._utils import get_route_path
from starlette.convertors import PathConvertor
from starlette.requests import Request
from starlette.routing import Match, Route


def _shape(path: str) -> tuple[str, int]:
    """A path's first segment and its number of segments."""
    return path.partition("/")[2].partition("/")[0], path.count("/")


def _endpoint(handler: Any) -> Any:
    """An async handler as an ASGI app. Starlette's request_response also
    wraps each request in the exception handlers (two closures and a wrapper
    of every send), which the app's Outgoing, a layer out, applies to the
    same scope anyway: 1.8 % of an order's instructions in the app
    (`bench.orderpath --instructions`)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        response = await handler(Request(scope, receive, send))
        await response(scope, receive, send)

    return app


class Router(routing.Router):
    """Starlette's router, trying only the routes a path could match: those of
    its first segment and its number of segments (each parameter of our
    routes is one segment), and any route that may span segments (a Mount).
    Starlette tries every route in turn, a regular expression each: ~1 us a
    route, 20 of them before /healthz. The order, and so which route wins and
    405 against 404, stays Starlette's. Each async endpoint is called
    through _endpoint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)

        def shape(route: Any) -> tuple[str, int] | None:
            """Its path's shape, or None for a route that may span segments."""
            if not isinstance(route, Route) or any(
                isinstance(c, PathConvertor) for c in route.param_convertors.values()
            ):
                return None
            return _shape(route.path)

        for route in self.routes:
            if isinstance(route, Route) and inspect.iscoroutinefunction(route.endpoint):
                route.app = _endpoint(route.endpoint)
        shapes = [(route, shape(route)) for route in self.routes]
        self._loose = [route for route, each in shapes if each is None]
        self._by_shape = {
            each: [route for route, its in shapes if its in (None, each)]
            for each in {its for _, its in shapes if its is not None}
        }

    def candidates(self, scope: Any) -> list[Any]:
        """The routes, in order, that could match this request's path."""
        return self._by_shape.get(_shape(get_route_path(scope)), self._loose)

    async def app(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.redirect_slashes:
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)
        partial: Any = None
        for route in self.candidates(scope):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:  # the path is a route's, the method is not: 405
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await self.default(scope, receive, send)
