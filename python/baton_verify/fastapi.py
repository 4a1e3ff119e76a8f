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

    @app.get("/reports")
    def reports(claims: dict = Depends(require_role(verifier, "admin"))):
        return {"user": claims["sub"]}
"""

from __future__ import annotations

from typing import Any, Callable, Dict

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from . import BatonVerifyError, Verifier

__all__ = ["baton", "require_aal", "require_role"]


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


def require_role(verifier: Verifier, role: str) -> Callable[[Request], Any]:
    """Like ``baton(verifier)``, and the token's ``roles`` claim (set by Baton's administrators)
    must hold ``role``: a valid token without it is refused 403 ``forbidden``."""

    check = baton(verifier)

    async def dependency(request: Request) -> Dict[str, Any]:
        claims = await check(request)
        if role not in (claims.get("roles") or []):
            raise HTTPException(status_code=403, detail={
                "code": "forbidden", "message": f"this needs the role {role!r}"})
        return claims

    return dependency


def require_aal(verifier: Verifier, level: int = 2) -> Callable[[Request], Any]:
    """Like ``baton(verifier)``, and the token's ``aal`` claim must be at least ``level`` (2: a
    second factor at sign-in, or a step-up that lasts): else 403 ``step_up_required``."""

    check = baton(verifier)

    async def dependency(request: Request) -> Dict[str, Any]:
        claims = await check(request)
        if int(claims.get("aal") or 1) < level:
            raise HTTPException(status_code=403, detail={
                "code": "step_up_required",
                "message": f"this needs assurance level {level}: step up with a second factor"})
        return claims

    return dependency
