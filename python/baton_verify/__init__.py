"""Accept Baton's access tokens in a Python API.

``Verifier(issuer=..., audience=...)`` checks what a request carries: the access token's
signature and claims (keys from the JWKS the discovery document names, fetched again at once
for an unknown ``kid``), the DPoP proof a bound token needs (RFC 9449: method, URL, time,
token hash, replay, a budget of proofs per key), and, given the introspection secret,
revocation (Baton's revocation feed, polled once a second by one thread per verifier).

``verifier.verify_request(method, url, headers)`` returns the claims or raises
``BatonVerifyError`` with ``.code`` and ``.status`` as Baton's API names them.
``baton_verify.fastapi`` has a FastAPI dependency; Flask and Django call ``verify_request``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Mapping, Optional, Tuple

import jwt
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["Verifier", "BatonVerifyError", "verify_wsgi_environ"]

#: How far a proof's ``iat`` may be from this clock, either way (seconds).
PROOF_WINDOW_S = 60


class BatonVerifyError(Exception):
    """A refused request: ``code`` and ``status`` as Baton's API uses them."""

    def __init__(self, code: str, status: int, message: str, *, dpop: bool = False,
                 retry_after: Optional[int] = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message
        self.dpop = dpop
        self.retry_after = retry_after

    @property
    def www_authenticate(self) -> Optional[str]:
        """The ``WWW-Authenticate`` value of a 401 (RFC 6750 or RFC 9449)."""
        if self.status != 401:
            return None
        if self.dpop:
            error = "invalid_dpop_proof" if self.code == "dpop_proof_invalid" else "invalid_token"
            return f'DPoP error="{error}", algs="ES256 EdDSA"'
        if self.code == "token_missing":
            return 'Bearer error="invalid_request"'
        return 'Bearer error="invalid_token"'

    def headers(self) -> Dict[str, str]:
        """The headers of the answer: ``WWW-Authenticate``, ``Retry-After``, no caching."""
        h = {"Cache-Control": "no-store"}
        if self.www_authenticate:
            h["WWW-Authenticate"] = self.www_authenticate
        if self.retry_after is not None:
            h["Retry-After"] = str(self.retry_after)
        return h

    def body(self) -> Dict[str, Any]:
        """The answer body, in Baton's error shape."""
        error: Dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}


def _invalid(why: str) -> BatonVerifyError:
    return BatonVerifyError("token_invalid", 401, f"the access token is invalid: {why}")


def _proof_error(why: str) -> BatonVerifyError:
    return BatonVerifyError("dpop_proof_invalid", 401, f"DPoP proof refused: {why}", dpop=True)


def _unavailable(why: str) -> BatonVerifyError:
    return BatonVerifyError("unavailable", 503, f"tokens cannot be checked now: {why}",
                            retry_after=1)


def _b64u_decode(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def _b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def _normalize_url(u: str) -> Optional[str]:
    """Scheme and host without case, default ports dropped, no query or fragment."""
    try:
        p = urllib.parse.urlsplit(u)
    except ValueError:
        return None
    if p.scheme not in ("http", "https") or not p.hostname:
        return None
    port = p.port
    default = {"http": 80, "https": 443}[p.scheme]
    host = p.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{p.scheme}://{netloc}{p.path or '/'}"


class Verifier:
    """A verifier for Baton's access tokens; safe to share between threads.

    ``issuer``: the tokens' ``iss`` (Baton's ``BATON_PUBLIC_URL``); ``audience`` (default
    ``"baton"``); ``base_url``: where Baton is reached (default the issuer); ``public_url``:
    this API's own URL, which DPoP proofs name (default the request's); ``introspection_secret``
    (``BATON_INTROSPECTION_TOKEN``): turns on the revocation feed (``revocations``, default
    True with the secret); ``leeway`` (seconds on ``exp``); ``dpop_proofs_per_key`` (per
    minute, 0: no limit); ``min_refetch`` (seconds between two key fetches for an unknown kid).
    """

    def __init__(self, issuer: str, audience: str = "baton", *, base_url: Optional[str] = None,
                 public_url: Optional[str] = None, introspection_secret: Optional[str] = None,
                 revocations: Optional[bool] = None, leeway: int = 5,
                 dpop_proofs_per_key: int = 3000, min_refetch: float = 10.0,
                 timeout: float = 5.0) -> None:
        if not issuer.startswith(("http://", "https://")):
            raise ValueError("issuer must be Baton's URL (BATON_PUBLIC_URL)")
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.base_url = (base_url or self.issuer).rstrip("/")
        self.public_url = public_url.rstrip("/") if public_url else None
        self.secret = introspection_secret
        self.use_feed = bool(self.secret) if revocations is None else revocations
        if self.use_feed and not self.secret:
            raise ValueError("the revocation feed needs introspection_secret")
        self.leeway = leeway
        self.proofs_per_key = dpop_proofs_per_key
        self.min_refetch = min_refetch
        self.timeout = timeout
        self._lock = threading.Lock()
        self._doc: Optional[Dict[str, Any]] = None
        self._keys: Dict[str, Ed25519PublicKey] = {}
        self._keys_at = 0.0
        self._proofs: Dict[str, float] = {}
        self._budgets: Dict[str, Tuple[float, int]] = {}
        self._purged_at = 0.0
        self._revoked: Dict[str, float] = {}
        self._cursor: Optional[int] = None
        self._feed_ok_at = 0.0
        self._feed_thread: Optional[threading.Thread] = None
        self._closed = threading.Event()

    # ---- fetching ----------------------------------------------------------------------

    def _get_json(self, url: str, headers: Optional[Mapping[str, str]] = None) -> Any:
        req = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.load(r)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _unavailable(f"{url}: {e}") from None

    def _discovery(self) -> Dict[str, Any]:
        if self._doc is None:
            doc = self._get_json(f"{self.base_url}/.well-known/openid-configuration")
            if doc.get("issuer") != self.issuer:
                raise _unavailable(f"Baton at {self.base_url} names the issuer "
                                   f"{doc.get('issuer')}, not {self.issuer}")
            self._doc = doc
        return self._doc

    def _key(self, kid: str) -> Ed25519PublicKey:
        with self._lock:
            key = self._keys.get(kid)
            if key is None and time.monotonic() - self._keys_at >= self.min_refetch:
                self._keys_at = time.monotonic()
                jwks = self._get_json(self._discovery()["jwks_uri"])
                keys = {}
                for k in jwks.get("keys", []):
                    if k.get("kty") == "OKP" and k.get("crv") == "Ed25519" and "kid" in k:
                        keys[k["kid"]] = Ed25519PublicKey.from_public_bytes(_b64u_decode(k["x"]))
                self._keys = keys
                key = keys.get(kid)
        if key is None:
            raise _invalid("signed by an unknown key")
        return key

    # ---- checks ------------------------------------------------------------------------

    def verify_request(self, method: str, url: str, headers: Mapping[str, str]) -> Dict[str, Any]:
        """Checks a request: its method, its URL (the query is ignored) and its headers (any
        mapping whose ``get`` takes lower-case names, as Starlette's, Flask's and Django's do).
        Returns the token's claims, or raises ``BatonVerifyError``."""
        if self.public_url:
            path = urllib.parse.urlsplit(url).path
            url = self.public_url + path
        return self.verify(method, url, headers.get("authorization"), headers.get("dpop"))

    def verify(self, method: str, url: str, authorization: Optional[str],
               dpop: Optional[str]) -> Dict[str, Any]:
        """The check itself, from the parts of a request."""
        if not authorization:
            raise BatonVerifyError("token_missing", 401, "an access token is required")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() not in ("bearer", "dpop") or not token or " " in token:
            raise _invalid("malformed Authorization header")
        is_dpop = scheme.lower() == "dpop"
        try:
            claims = self._token(token)
        except BatonVerifyError as e:
            e.dpop = is_dpop
            raise
        jkt = (claims.get("cnf") or {}).get("jkt")
        if jkt and not is_dpop:
            raise _proof_error("this access token is bound to a DPoP key: send it as "
                               "`Authorization: DPoP` with a proof")
        if not jkt and is_dpop:
            raise _proof_error("this access token is not DPoP-bound: send it as "
                               "`Authorization: Bearer`")
        if jkt:
            self._proof(dpop, method, url, token, jkt)
        if self.use_feed:
            self._feed_ready()
            with self._lock:
                until = self._revoked.get(claims["sid"])
            if until is not None and until > time.time():
                raise BatonVerifyError("token_revoked", 401,
                                       "the session of this access token was signed out",
                                       dpop=bool(jkt))
        return claims

    def _token(self, token: str) -> Dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _invalid("not a JWT") from None
        # The algorithm is pinned, never taken from the token.
        if header.get("alg") != "EdDSA" or header.get("typ") != "at+jwt" or \
                not isinstance(header.get("kid"), str):
            raise _invalid("not a Baton access token")
        key = self._key(header["kid"])
        try:
            return jwt.decode(token, key, algorithms=["EdDSA"], audience=self.audience,
                              issuer=self.issuer, leeway=self.leeway,
                              options={"require": ["exp", "iat", "iss", "aud", "sub", "sid"]})
        except jwt.ExpiredSignatureError:
            raise BatonVerifyError("token_expired", 401, "the access token has expired") from None
        except jwt.PyJWTError as e:
            raise _invalid(str(e)) from None

    def _proof(self, jws: Optional[str], method: str, url: str, token: str, jkt: str) -> None:
        if not jws:
            raise _proof_error("a DPoP-bound access token needs a DPoP proof")
        parts = jws.split(".")
        if len(parts) != 3 or len(jws) > 4096:
            raise _proof_error("the DPoP header is not a JWS")
        try:
            header = json.loads(_b64u_decode(parts[0]))
            c = json.loads(_b64u_decode(parts[1]))
            signature = _b64u_decode(parts[2])
        except ValueError:
            raise _proof_error("the DPoP header is not a JWS") from None
        jwk = header.get("jwk")
        if header.get("typ") != "dpop+jwt" or not isinstance(jwk, dict) or "d" in jwk:
            raise _proof_error("not a DPoP proof")
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        try:
            if header.get("alg") == "ES256" and jwk.get("kty") == "EC" and jwk.get("crv") == "P-256":
                members = {"crv": "P-256", "kty": "EC", "x": jwk["x"], "y": jwk["y"]}
                pub = ec.EllipticCurvePublicNumbers(
                    int.from_bytes(_b64u_decode(jwk["x"]), "big"),
                    int.from_bytes(_b64u_decode(jwk["y"]), "big"), ec.SECP256R1()).public_key()
                if len(signature) != 64:
                    raise InvalidSignature()
                der = encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                           int.from_bytes(signature[32:], "big"))
                pub.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
            elif header.get("alg") == "EdDSA" and jwk.get("kty") == "OKP" and \
                    jwk.get("crv") == "Ed25519":
                members = {"crv": "Ed25519", "kty": "OKP", "x": jwk["x"]}
                Ed25519PublicKey.from_public_bytes(_b64u_decode(jwk["x"])).verify(
                    signature, signing_input)
            else:
                raise _proof_error("unsupported key or algorithm (ES256 with P-256, or EdDSA "
                                   "with Ed25519)")
        except (InvalidSignature, KeyError, ValueError, TypeError):
            raise _proof_error("bad signature or key") from None
        # RFC 7638: the thumbprint of the required members, sorted, without white space.
        canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
        if _b64u(hashlib.sha256(canonical).digest()) != jkt:
            raise _proof_error("the DPoP proof is signed by another key than the token is bound to")
        if c.get("htm") != method:
            raise _proof_error("htm is not the request's method")
        htu = c.get("htu")
        if not isinstance(htu, str) or _normalize_url(htu) != _normalize_url(url):
            raise _proof_error(f"htu is not {url}")
        now = time.time()
        iat = c.get("iat")
        if not isinstance(iat, (int, float)) or abs(iat - now) > PROOF_WINDOW_S:
            raise _proof_error("iat is not within 60 seconds of now")
        if c.get("ath") != _b64u(hashlib.sha256(token.encode()).digest()):
            raise _proof_error("ath is not the access token's hash")
        jti = c.get("jti")
        if not isinstance(jti, str) or not 1 <= len(jti) <= 256:
            raise _proof_error("jti missing or too long")
        pid = f"{jkt}\0{jti}"
        with self._lock:
            self._purge(now)
            # A replay is refused before the key's budget is counted.
            if pid in self._proofs:
                raise _proof_error("the DPoP proof was used before: make a new one per request")
            if self.proofs_per_key > 0:
                start, n = self._budgets.get(jkt, (now, 0))
                fresh = now - start >= 60
                if not fresh and n >= self.proofs_per_key:
                    raise BatonVerifyError("rate_limited", 429,
                                           "too many requests with this DPoP key",
                                           retry_after=max(1, int(start + 61 - now)))
                self._budgets[jkt] = (now, 1) if fresh else (start, n + 1)
            self._proofs[pid] = iat + PROOF_WINDOW_S + 1

    def _purge(self, now: float) -> None:
        if now - self._purged_at < 10:
            return
        self._purged_at = now
        self._proofs = {k: v for k, v in self._proofs.items() if v >= now}
        self._budgets = {k: v for k, v in self._budgets.items() if now - v[0] < 60}

    # ---- the revocation feed -----------------------------------------------------------

    def _feed_ready(self) -> None:
        """The first answer before the first check; then a thread polls every second. A feed
        silent for 30 s makes checks fail (503) rather than accept what may be signed out."""
        if self._feed_thread is None:
            with self._lock:
                first = self._feed_thread is None
                if first:
                    self._feed_thread = threading.Thread(target=self._feed_loop,
                                                         name="baton-verify-feed", daemon=True)
            if first:
                try:
                    self._poll()
                finally:
                    self._feed_thread.start()
        if time.time() - self._feed_ok_at > 30:
            self._poll()

    def _poll(self) -> None:
        endpoint = self._discovery().get("revocations_endpoint")
        if not endpoint:
            raise _unavailable("Baton has no revocation feed (introspection is off)")
        since = "" if self._cursor is None else f"?since={self._cursor}"
        answer = self._get_json(endpoint + since, {"Authorization": f"Bearer {self.secret}"})
        now = time.time()
        with self._lock:
            for r in answer.get("revoked", []):
                self._revoked[r["sid"]] = now + answer["keep"]
            self._revoked = {s: u for s, u in self._revoked.items() if u > now}
            self._cursor = answer["next"]
            self._feed_ok_at = now

    def _feed_loop(self) -> None:
        while not self._closed.wait(1.0):
            try:
                self._poll()
            except BatonVerifyError:
                pass

    def close(self) -> None:
        """Stops the revocation feed's thread."""
        self._closed.set()


def verify_wsgi_environ(verifier: Verifier, environ: Mapping[str, Any]) -> Dict[str, Any]:
    """For Flask and Django (and any WSGI app): checks the request a WSGI ``environ`` describes.
    Behind a proxy, give the verifier ``public_url``."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
    url = f"{scheme}://{host}{environ.get('PATH_INFO', '')}"
    headers = {"authorization": environ.get("HTTP_AUTHORIZATION"),
               "dpop": environ.get("HTTP_DPOP")}
    return verifier.verify_request(environ.get("REQUEST_METHOD", "GET"), url, headers)

