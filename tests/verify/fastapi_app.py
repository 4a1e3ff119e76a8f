"""A FastAPI service that accepts Baton's tokens with baton_verify, as docs/api.md shows it.

usage: fastapi_app.py PORT   (env: BATON_URL, BATON_INTROSPECTION_TOKEN, APP_ORIGIN)
"""
import os
import sys

import uvicorn
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from baton_verify import Verifier
from baton_verify.fastapi import baton, require_aal, require_role

verifier = Verifier(
    issuer=os.environ["BATON_URL"],  # Baton's BATON_PUBLIC_URL
    introspection_secret=os.environ["BATON_INTROSPECTION_TOKEN"],  # turns on the revocation feed
)
app = FastAPI()
app.add_middleware(
    CORSMiddleware,
    allow_origins=[os.environ["APP_ORIGIN"]],
    allow_headers=["authorization", "dpop", "x-device-id"],
    expose_headers=["www-authenticate"],
)


@app.get("/orders")
def orders(claims: dict = Depends(baton(verifier))):
    return {"api": "fastapi", "user": claims["sub"]}


@app.get("/reports")
def reports(claims: dict = Depends(require_role(verifier, "admin"))):
    return {"api": "fastapi", "reports": []}


@app.get("/payouts")
def payouts(claims: dict = Depends(require_aal(verifier, 2))):
    return {"api": "fastapi", "sent": True}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
