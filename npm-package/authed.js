// What baton-auth/account and baton-auth/mfa share: calls to the Baton server as the
// signed-in user, answered as values or BatonErrors.
import { BatonError } from "./index.js";

// 401 codes about the access token itself: refreshed once and sent again. Any other 401 (a
// wrong password or code) is the answer: sent again it would count twice toward the lockout.
const TOKEN = ["token_expired", "token_invalid", "token_revoked", "token_missing", "dpop_proof_invalid"];

export const url = (baton, path) => new URL(path, new URL(baton.baseUrl, globalThis.location && location.href));

/** The answer's JSON body, or its error as a BatonError. */
export async function answer(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {}
  if (res.ok) return body;
  const e = (body && body.error) || {};
  const ra = res.headers.get("retry-after");
  throw new BatonError(e.code || "internal", e.message || `HTTP ${res.status}`, res.status, res.status === 429 || res.status >= 500, ra ? Number(ra) : undefined);
}

/** `method path` with `body` as the signed-in user (baton.fetch without its own retry). */
export async function send(baton, method, path, body, again) {
  const res = await baton.fetch(url(baton, path), {
    method,
    headers: { "Content-Type": "application/json" },
    body: method === "GET" ? undefined : JSON.stringify(body || {}),
    batonRetry: false,
  });
  if (res.status === 401 && !again) {
    const code = await res.clone().json().then((b) => b.error.code, () => "");
    if (TOKEN.includes(code)) {
      await baton.refresh();
      return send(baton, method, path, body, true);
    }
  }
  return answer(res);
}
