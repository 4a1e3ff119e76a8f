"""A FastAPI dependency: ``Depends(baton(verifier))`` gives a route the token's claims, and
answers a refused request as Baton's API would (status, ``WWW-Authenticate``, error body).

    from fastapi import Depends, FastAPI
    from baton_verify import Verifier
    from baton_verify.fastapi import baton

    verifier = Verifier(issuer="https://auth.example.com", introspection_secret=SECRET)
    app = FastAPI()

    @app.get("/orders")
    def orders(claims: dict = Depends(baton(verifier))):
        return {"user": claims["sub"]}
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from . import BatonVerifyError, Verifier

__all__ = ["baton"]


def baton(verifier: Verifier) -> Callable[[Request], Any]:
    """The dependency for ``verifier``: the claims, or an ``HTTPException`` with Baton's error
    body under ``detail`` and its headers."""

    async def dependency(request: Request) -> Dict[str, Any]:
        try:
            # Fetches (keys, the first feed answer) block: off the event loop.
            return await run_in_threadpool(
                verifier.verify_request, request.method, str(request.url), request.headers)
        except BatonVerifyError as e:
            raise HTTPException(status_code=e.status, detail=e.body()["error"],
                                headers=e.headers()) from None

    return dependency
