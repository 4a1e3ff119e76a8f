"""Verifies a Baton access token the way a Python API would: PyJWT (with cryptography, for
EdDSA), keys from the JWKS that the discovery document names.

usage: verify.py <baton-server URL> <access token> <audience>
Prints the verified claims as JSON; exits 1 with the reason when the token is refused.
"""
import json
import sys
import urllib.request

import jwt

base, token, audience = sys.argv[1:4]
with urllib.request.urlopen(f"{base}/.well-known/openid-configuration") as r:
    doc = json.load(r)
try:
    if jwt.get_unverified_header(token).get("typ") != "at+jwt":
        raise jwt.InvalidTokenError("not an access token (typ)")
    key = jwt.PyJWKClient(doc["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],  # pinned: never take the algorithm from the token
        audience=audience,
        issuer=doc["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
except jwt.PyJWTError as e:
    print(f"refused: {type(e).__name__}: {e}", file=sys.stderr)
    sys.exit(1)
print(json.dumps(claims))
