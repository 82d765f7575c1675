"""The explorer's API routes, one small module per page or resource."""

from __future__ import annotations

from . import made, meta, neurons, predict, sessions, synthesize, tutorials

#: Routers included by :func:`v4compact.web.app.create_app`, in order.
ROUTERS = [
    meta.router,
    neurons.router,
    made.router,
    sessions.router,
    predict.router,
    synthesize.router,
    tutorials.router,
]
