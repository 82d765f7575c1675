"""ASGI middleware of the explorer: who may ask (Host and Origin), how big and how slow a
request body may be, and the security headers of every answer.

* :class:`HostOriginMiddleware` answers only to the host names it serves (a DNS-rebinding
  page names its own host and is refused) and refuses requests that a page of another site
  sends to it (a foreign ``Origin``, or ``Sec-Fetch-Site`` of another site for the API), so
  no web page the user visits can read the explorer or fill its queue.
* :class:`ClientAddressMiddleware` records the client's address for the worker pool's
  per-client limits (:data:`v4compact.web.jobs.CURRENT_CLIENT`).
* :class:`RequestBodyMiddleware` refuses bodies over a size (413) and bodies that stop
  arriving (408): a ``Content-Length`` that promises more than is sent cannot hold a
  connection.
* :class:`SecurityHeadersMiddleware` adds :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from .jobs import CURRENT_CLIENT

#: Host names the explorer always answers to (this computer).
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
#: Seconds a request body may pause before the request is dropped (HTTP 408).
BODY_IDLE_TIMEOUT_S = 5.0
#: Seconds a whole request body may take to arrive (HTTP 408).
BODY_TOTAL_TIMEOUT_S = 60.0

#: Content-Security-Policy: everything from this server only, no inline script or style
#: elements, images also from data:/blob: URLs (canvas drawings, webcam frames).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(self), microphone=(), geolocation=()"),
)


class SecurityHeadersMiddleware:
    """Add :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                headers = list(message.get("headers", []))
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _answer(send, status: int, detail: str) -> None:
    """Send a JSON ``{"detail": ...}`` answer and ask the server to close the connection."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def normalize_host(name: str) -> str:
    """A host name as the ``Host`` header carries it, without port: ``"LocalHost:8000"`` ->
    ``"localhost"``, ``"[::1]:80"`` -> ``"[::1]"``, ``"::1"`` -> ``"[::1]"``."""
    name = name.strip().lower().rstrip(".")
    if name.startswith("["):
        return name[: name.find("]") + 1] if "]" in name else name
    if name.count(":") > 1:  # a bare IPv6 address
        return f"[{name}]"
    return name.partition(":")[0]


class HostOriginMiddleware:
    """Answer only to the allowed host names, and only to this site's own pages.

    Args:
        app: the ASGI app.
        allowed_hosts: host names (or addresses) besides :data:`LOOPBACK_HOSTS` that users
            type to reach the server, e.g. a LAN name given by ``serve --allow-host``.

    Refusals (JSON ``{"detail": ...}``): 400 for a ``Host`` header naming another host
    (DNS rebinding), 403 for an ``Origin`` that is not this server's own (a page of another
    site posting to it, or opening an event stream), and 403 for API requests a browser marks
    as sent by another site (``Sec-Fetch-Site``) other than a click on a link.
    """

    def __init__(self, app, allowed_hosts: Iterable[str] = ()):
        self.app = app
        self.allowed_hosts = tuple(
            dict.fromkeys([*LOOPBACK_HOSTS, *(normalize_host(h) for h in allowed_hosts)])
        )

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name: value.decode("latin-1") for name, value in scope.get("headers", [])}
        host = headers.get(b"host")
        problem = None
        if host is not None and normalize_host(host) not in self.allowed_hosts:
            shown = normalize_host(host)[:60]
            problem = (
                400,
                f"this server answers to {', '.join(self.allowed_hosts)}, not {shown!r}; to "
                f"serve it on a network on purpose, start it with 'v4compact serve --host "
                f"0.0.0.0 --allow-host {shown}'",
            )
        else:
            origin = headers.get(b"origin")
            if origin is not None and not _same_origin(origin, host):
                problem = (
                    403,
                    f"requests from other web sites ({origin[:60]}) are refused; open the "
                    "explorer at its own address",
                )
            elif (
                scope.get("path", "").startswith("/api/")
                and headers.get(b"sec-fetch-site") in ("cross-site", "same-site")
                and headers.get(b"sec-fetch-mode") != "navigate"
            ):
                problem = (
                    403,
                    "requests from other web sites are refused; open the explorer at its "
                    "own address",
                )
        if problem is not None:
            await _answer(send, *problem)
            return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str | None) -> bool:
    """True when ``origin`` is ``http(s)://`` followed by exactly the ``Host`` header."""
    parts = urlsplit(origin.strip().lower())
    return (
        host is not None
        and parts.scheme in ("http", "https")
        and parts.netloc == host.strip().lower()
        and not parts.path
    )


class ClientAddressMiddleware:
    """Set :data:`~v4compact.web.jobs.CURRENT_CLIENT` to the client's address per request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        client = scope.get("client")
        token = CURRENT_CLIENT.set(str(client[0]) if client else None)
        try:
            await self.app(scope, receive, send)
        finally:
            CURRENT_CLIENT.reset(token)


class _BodyRefused(Exception):
    """Raised inside the app's ``receive`` once the body is refused (too large or too slow)."""


class RequestBodyMiddleware:
    """Refuse request bodies that are too large (413) or arrive too slowly (408).

    The declared ``Content-Length`` is checked first; bodies without one (chunked) are
    counted as they arrive and cut off at the limit. While a body is incomplete, every read
    waits at most ``idle_timeout_s`` for the next piece and the whole body at most
    ``total_timeout_s``; then the request is answered 408 and the connection closed.

    Args:
        app: the ASGI app.
        max_bytes: largest body, in bytes.
        upload_limit: the limit users are told about (the image, without the multipart
            envelope; default ``max_bytes``).
        idle_timeout_s: longest pause within a body, in seconds.
        total_timeout_s: longest time for a whole body, in seconds.
    """

    def __init__(
        self,
        app,
        max_bytes: int,
        upload_limit: int | None = None,
        idle_timeout_s: float = BODY_IDLE_TIMEOUT_S,
        total_timeout_s: float = BODY_TOTAL_TIMEOUT_S,
    ):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_limit = upload_limit or max_bytes
        self.idle_timeout_s = idle_timeout_s
        self.total_timeout_s = total_timeout_s

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_bytes:
                    await _answer(send, 413, self._too_large(declared))
                    return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout_s
        received = 0
        body_complete = False
        refusal: tuple[int, str] | None = None
        answered = False

        async def guarded_receive():
            nonlocal received, body_complete, refusal
            if body_complete:  # later reads wait for a disconnect (event streams): no limit
                return await receive()
            wait_s = max(0.0, min(self.idle_timeout_s, deadline - loop.time()))
            try:
                message = await asyncio.wait_for(receive(), timeout=wait_s)
            except TimeoutError:
                refusal = (
                    408,
                    f"the request body stopped arriving ({received} bytes received); send "
                    "the whole file at once",
                )
                raise _BodyRefused from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refusal = (413, self._too_large(received))
                    raise _BodyRefused
            return message

        async def guarded_send(message):
            # once the body is refused, whatever the app answers (frameworks turn the
            # interrupted read into "error parsing the body") becomes our refusal
            nonlocal answered
            if refusal is not None:
                if not answered and message["type"] == "http.response.start":
                    answered = True
                    await _answer(send, *refusal)
                return
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except _BodyRefused:
            if not answered:
                answered = True
                await _answer(send, *refusal)

    def _too_large(self, size: int) -> str:
        from .uploads import human_size

        limit = human_size(self.upload_limit)
        if size > 0:
            return (
                f"the request is too large ({human_size(size)}); send an image of at most {limit}"
            )
        return f"the request has no valid size; send an image of at most {limit}"
