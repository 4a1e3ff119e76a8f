"""baton_verify against a real baton-server (``BATON_SERVER_BIN``, else the debug build):
Bearer and DPoP-bound tokens, proofs, replays, revocation by the feed, key rotation, FastAPI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from baton_verify import BatonVerifyError, Verifier

ROOT = Path(__file__).resolve().parents[2]
SECRET = "python-verifier-introspection-secret"
API = "http://api.test"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Baton:
    """A baton-server on a loopback port, with a fresh SQLite database."""

    def __init__(self, **env: str) -> None:
        binary = os.environ.get("BATON_SERVER_BIN", str(ROOT / "target/debug/baton-server"))
        self.dir = tempfile.mkdtemp(prefix="baton-py-")
        self.env = {**os.environ, "BATON_BIND": "127.0.0.1:0", "BATON_LOG": "warn",
                    "BATON_DATABASE_URL": f"sqlite://{self.dir}/baton.db",
                    "BATON_INTROSPECTION_TOKEN": SECRET, "BATON_RATE_LIMITS": "off", **env}
        self.binary = binary
        self.proc = subprocess.Popen([binary], env=self.env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("listening on "), line
        self.url = line.removeprefix("listening on ")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def post(self, path: str, body: dict, headers: dict | None = None) -> tuple[int, dict]:
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     method="POST",
                                     headers={"content-type": "application/json",
                                              "x-device-id": "py-test", **(headers or {})})
        try:
            with urllib.request.urlopen(req) as r:
                text = r.read()
                return r.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def sign_in(self, key: "ProofKey | None" = None) -> dict:
        email = f"py{uuid.uuid4().hex}@example.com"
        status, _ = self.post("/auth/register", {"email": email, "password": "correct horse"})
        assert status == 201
        headers = {"DPoP": key.proof("POST", f"{self.url}/auth/login")} if key else {}
        status, tokens = self.post("/auth/login", {"email": email, "password": "correct horse"},
                                   headers)
        assert status == 200, tokens
        return tokens


class ProofKey:
    """A client's DPoP key, as the browser package makes one: Ed25519 where the browser has it,
    else P-256."""

    def __init__(self, kind: str = "P-256") -> None:
        self.kind = kind
        if kind == "Ed25519":
            self.key = Ed25519PrivateKey.generate()
            raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw)}
        else:
            self.key = ec.generate_private_key(ec.SECP256R1())
            n = self.key.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")),
                        "y": b64u(n.y.to_bytes(32, "big"))}

    def proof(self, htm: str, htu: str, token: str | None = None, jti: str | None = None,
              iat_offset: int = 0) -> str:
        alg = "EdDSA" if self.kind == "Ed25519" else "ES256"
        header = {"typ": "dpop+jwt", "alg": alg, "jwk": self.jwk}
        claims = {"jti": jti or str(uuid.uuid4()), "htm": htm, "htu": htu,
                  "iat": int(time.time()) + iat_offset}
        if token:
            claims["ath"] = b64u(hashlib.sha256(token.encode()).digest())
        signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
        if self.kind == "Ed25519":
            return f"{signing_input}.{b64u(self.key.sign(signing_input.encode()))}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{b64u(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@pytest.fixture
def baton():
    b = Baton()
    yield b
    b.stop()


def verifier(b: Baton, **kw) -> Verifier:
    return Verifier(issuer=b.url, introspection_secret=SECRET, public_url=API, **kw)


def refused(f, code: str) -> BatonVerifyError:
    with pytest.raises(BatonVerifyError) as e:
        f()
    assert e.value.code == code, (e.value.code, e.value.message)
    return e.value


@pytest.mark.parametrize("kind", ["P-256", "Ed25519"])
def test_bearer_and_bound_tokens_with_their_proofs(baton, kind):
    v = verifier(baton)
    t = baton.sign_in()
    claims = v.verify_request("GET", f"{API}/orders?x=1", {"authorization": f"Bearer {t['access_token']}"})
    assert claims["sub"] == t["user"]["id"]
    assert refused(lambda: v.verify_request("GET", f"{API}/orders", {}), "token_missing").status == 401

    key = ProofKey(kind)
    bound = baton.sign_in(key)
    access = bound["access_token"]
    proof = key.proof("GET", f"{API}/orders", access)
    headers = {"authorization": f"DPoP {access}", "dpop": proof}
    assert v.verify_request("GET", f"{API}/orders", headers)["cnf"]["jkt"]
    # The same proof again: a replay.
    e = refused(lambda: v.verify_request("GET", f"{API}/orders", headers), "dpop_proof_invalid")
    assert e.www_authenticate.startswith("DPoP ")
    # Copied out and used elsewhere: without the key, as Bearer, or with another key's proof.
    refused(lambda: v.verify_request("GET", f"{API}/orders", {"authorization": f"Bearer {access}"}),
            "dpop_proof_invalid")
    thief = ProofKey(kind).proof("GET", f"{API}/orders", access)
    refused(lambda: v.verify_request("GET", f"{API}/orders",
                                     {"authorization": f"DPoP {access}", "dpop": thief}),
            "dpop_proof_invalid")
    # Another URL or method, an old proof, a proof for another token.
    for p in [key.proof("GET", f"{API}/other", access), key.proof("POST", f"{API}/orders", access),
              key.proof("GET", f"{API}/orders", access, iat_offset=-120),
              key.proof("GET", f"{API}/orders", t["access_token"])]:
        refused(lambda: v.verify_request("GET", f"{API}/orders",
                                         {"authorization": f"DPoP {access}", "dpop": p}),
                "dpop_proof_invalid")
    # A tampered token.
    refused(lambda: v.verify_request("GET", f"{API}/orders",
                                     {"authorization": f"Bearer {t['access_token'][:-4]}AAAA"}),
            "token_invalid")
    v.close()


def test_a_replayed_proof_costs_its_owner_no_budget(baton):
    v = verifier(baton, dpop_proofs_per_key=5)
    key = ProofKey()
    access = baton.sign_in(key)["access_token"]
    captured = key.proof("GET", f"{API}/orders", access)
    h = {"authorization": f"DPoP {access}", "dpop": captured}
    v.verify_request("GET", f"{API}/orders", h)
    for _ in range(20):
        refused(lambda: v.verify_request("GET", f"{API}/orders", h), "dpop_proof_invalid")
    for _ in range(4):
        v.verify_request("GET", f"{API}/orders", {"authorization": f"DPoP {access}",
                                                   "dpop": key.proof("GET", f"{API}/orders", access)})
    e = refused(lambda: v.verify_request("GET", f"{API}/orders", {
        "authorization": f"DPoP {access}", "dpop": key.proof("GET", f"{API}/orders", access)}),
        "rate_limited")
    assert e.status == 429 and e.retry_after >= 1
    v.close()


def test_a_signed_out_session_is_refused_within_about_a_second(baton):
    v = verifier(baton)
    t = baton.sign_in()
    h = {"authorization": f"Bearer {t['access_token']}"}
    v.verify_request("GET", f"{API}/orders", h)
    status, _ = baton.post("/auth/logout-all", {}, {"authorization": f"Bearer {t['access_token']}"})
    assert status == 204
    started = time.monotonic()
    while True:
        try:
            v.verify_request("GET", f"{API}/orders", h)
        except BatonVerifyError as e:
            assert e.code == "token_revoked"
            break
        assert time.monotonic() - started < 2.5, "still accepted after 2.5 s"
        time.sleep(0.05)
    # A verifier that starts now learns of it at its first check.
    fresh = verifier(baton)
    refused(lambda: fresh.verify_request("GET", f"{API}/orders", h), "token_revoked")
    v.close()
    fresh.close()


def test_a_rotated_key_is_accepted_from_its_first_token(baton):
    # Published 1 s before it signs; this verifier fetches the keys again for an unknown kid at
    # most every 0.5 s (the defaults: 2 minutes and 10 s).
    v = verifier(baton, min_refetch=0.5)
    before = baton.sign_in()
    v.verify_request("GET", f"{API}/orders", {"authorization": f"Bearer {before['access_token']}"})
    env = {**baton.env, "BATON_KEY_PUBLISH_AHEAD": "1s"}
    out = subprocess.run([baton.binary, "keys", "rotate"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kid = out.stdout.split()[3].rstrip(":")
    deadline = time.monotonic() + 10
    while True:
        t = baton.sign_in()
        header = json.loads(base64.urlsafe_b64decode(t["access_token"].split(".")[0] + "=="))
        # Every token verifies, the new key's first ones included (an unknown kid is fetched).
        v.verify_request("GET", f"{API}/orders", {"authorization": f"Bearer {t['access_token']}"})
        if header["kid"] == kid:
            break
        assert time.monotonic() < deadline, "the server never switched keys"
        time.sleep(0.2)
    v.close()


def test_the_fastapi_dependency(baton):
    from fastapi import Depends, FastAPI
    from fastapi.testclient import TestClient

    from baton_verify.fastapi import baton as baton_dependency

    v = verifier(baton)
    app = FastAPI()

    @app.get("/orders")
    def orders(claims: dict = Depends(baton_dependency(v))):
        return {"user": claims["sub"]}

    client = TestClient(app, base_url=API)
    t = baton.sign_in()
    r = client.get("/orders", headers={"Authorization": f"Bearer {t['access_token']}"})
    assert r.status_code == 200 and r.json() == {"user": t["user"]["id"]}
    r = client.get("/orders")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_request"'
    assert r.json()["detail"]["code"] == "token_missing"
    v.close()
