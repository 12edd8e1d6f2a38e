"""What a route asks FastAPI for besides its parameters: the process's runtime, and typed store calls."""

from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request

from ..runtime import Runtime

P = ParamSpec("P")
T = TypeVar("T")


async def get_runtime(request: Request) -> Runtime:
    """The runtime create_app put on the app (one per worker process)."""
    rt: Runtime = request.app.state.rt
    return rt


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def run(rt: Runtime, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """A store call on the store's thread pool. Store exceptions pass through: errors.py answers them."""
    result: T = await rt.astore.run(fn, *args, **kwargs)
    return result
