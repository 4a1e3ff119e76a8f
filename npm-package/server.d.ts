// baton-auth/server: accept Baton's access tokens in a backend (Node 20+; no wasm).

/** The claims of a Baton access token. */
export interface AccessClaims {
  iss: string;
  aud: string | string[];
  sub: string;
  sid: string;
  jti: string;
  iat: number;
  exp: number;
  email_verified?: boolean;
  /** Present for a DPoP-bound token: the thumbprint of its key. */
  cnf?: { jkt: string };
  [claim: string]: unknown;
}

export interface VerifierOptions {
  /** The tokens' `iss`: Baton's `BATON_PUBLIC_URL`. */
  issuer: string;
  /** The expected `aud` (default `"baton"`). */
  audience?: string;
  /** Where Baton is reached (default: the issuer). */
  baseUrl?: string;
  /** This API's own URL, which DPoP proofs name (default: the request's). */
  publicUrl?: string;
  /** `BATON_INTROSPECTION_TOKEN`: turns on the revocation feed. */
  introspectionSecret?: string;
  /** Poll Baton's revocation feed once a second (default: true with the secret). */
  revocations?: boolean;
  /** Seconds of leeway on `exp` (default 5). */
  leeway?: number;
  /** DPoP proofs one key may have accepted per minute (default 3000; 0: no limit). */
  dpopProofsPerKey?: number;
  /** Least time between two key fetches for an unknown `kid`, in ms (default 10 000). */
  minRefetchMs?: number;
  fetch?: typeof globalThis.fetch;
}

/** A refused request: `code` and `status` as Baton's API uses them. */
export declare class VerifyError extends Error {
  readonly code:
    | "token_missing"
    | "token_invalid"
    | "token_expired"
    | "token_revoked"
    | "dpop_proof_invalid"
    | "rate_limited"
    | "unavailable";
  readonly status: 401 | 429 | 503;
  readonly retryAfter?: number;
  /** The `WWW-Authenticate` value of a 401. */
  readonly wwwAuthenticate: string | undefined;
  toJSON(): { error: { code: string; message: string; retry_after?: number } };
}

export declare class Verifier {
  constructor(options: VerifierOptions);
  /** Verifies a Web `Request`: the claims, or a rejection with a `VerifyError`. */
  verifyRequest(request: Request): Promise<AccessClaims>;
  /** The check from the parts of a request (`url` without the query). */
  verify(parts: { method: string; url: string; authorization?: string | null; dpop?: string | null }): Promise<AccessClaims>;
  /** Express or Connect middleware: the claims go to `req.baton`. */
  express(): (req: any, res: any, next: (err?: unknown) => void) => void;
  /** A Fastify `onRequest` hook: the claims go to `request.baton`. */
  fastify(): (request: any, reply: any) => Promise<unknown>;
  /** Stops polling the revocation feed. */
  close(): void;
}

export declare function createVerifier(options: VerifierOptions): Verifier;

/** Who is signed in, as `BatonServer.session` reads it from the request's cookies. */
export interface ServerSession {
  user: { id: string; roles: string[]; emailVerified: boolean };
  /** A Bearer access token, valid for at least `refreshMargin` seconds. */
  accessToken: string;
  /** `Date.now()` milliseconds. */
  expiresAt: number;
}

export interface BatonServerOptions extends Partial<Omit<VerifierOptions, "baseUrl">> {
  /** Where baton-server listens, as the app's server reaches it. */
  baseUrl: string;
  /** The app's path for Baton's endpoints (default `/auth/`, Baton's own). */
  prefix?: string;
  /** Seconds of life under which an access token is refreshed first (default 30). */
  refreshMargin?: number;
  /** Mark cookies `Secure` (default: yes, unless the request is to plain-HTTP localhost). */
  secure?: boolean;
}

export declare class BatonServer {
  constructor(options: BatonServerOptions);
  /**
   * Forwards a request under the prefix to Baton (cookies made the app's, DPoP proofs not
   * passed on); other requests resolve to `null`.
   */
  proxy(request: Request, options?: { clientIp?: string }): Promise<Response | null>;
  /**
   * The session of the request's cookies, refreshed when its access token is about to expire;
   * `headers` holds the Set-Cookie lines to add to the app's response (empty without a refresh).
   */
  session(request: Request, options?: { refresh?: boolean }): Promise<{ session: ServerSession | null; headers: Headers }>;
  /** Stops the revocation polling. */
  close(): void;
}

export declare function createBatonServer(options: BatonServerOptions): BatonServer;
