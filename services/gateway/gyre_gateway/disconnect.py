"""Run a request's work unless its client leaves first: then the work is cancelled, not finished for no one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

from starlette.requests import Request

from gyre_gateway.errors import ApiError

T = TypeVar("T")


async def client_left(request: Request) -> None:
    """Return once the client has disconnected (the body is already read, so only that message can come)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def client_closed_request() -> ApiError:
    # nginx's 499: nobody reads it, but the metrics and logs say what happened.
    return ApiError(499, "the client closed the request before the answer was ready", code="client_disconnected")


async def unless_client_leaves(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result; if the client disconnects first, ``work`` is cancelled (its clean-up runs) and 499 raised."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(client_left(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise client_closed_request()
    finally:
        watcher.cancel()
        if not task.done():  # we were cancelled ourselves
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
