/** Options of `Baton.create`. */
export interface BatonOptions {
  /** baton-server origin, e.g. "https://auth.example.com". */
  baseUrl: string;
  /** Where the session is kept. Default "local". */
  storage?: "local" | "session" | "memory";
  /** "cookie" keeps the refresh token in an HttpOnly cookie, out of JavaScript's reach. Default "body". */
  refreshTransport?: "body" | "cookie";
  /** Refresh this many seconds before the access token expires (capped at half its life). Default 60. */
  refreshMargin?: number;
  /** Coordinate tabs of one origin: one refresh for all, shared sign-out. Default true. */
  crossTab?: boolean;
  /** Milliseconds before a call is abandoned. Defaults: auth 10000, request 20000. */
  timeouts?: { auth?: number; request?: number };
  /** Storage and channel namespace, for several Baton instances on one origin. */
  storageKey?: string;
  /**
   * Origins besides the page's own and baseUrl's whose requests through `baton.fetch` carry the
   * access token and X-Device-ID, e.g. ["https://api.example.com"]. Requests to any other
   * origin are sent without them.
   */
  allowedOrigins?: string[];
  /**
   * Bind the session to a key that never leaves this browser (DPoP, RFC 9449): a P-256 key
   * made with WebCrypto, not extractable, kept in IndexedDB and shared by the origin's tabs;
   * login, refresh, logout and `baton.fetch` send a proof signed by it, so a copied refresh or
   * access token is useless elsewhere. Default true where WebCrypto and IndexedDB exist (the
   * server decides: it answers with Bearer tokens when its DPoP is off).
   */
  dpop?: boolean;
  /** Where to load the .wasm from, when a bundler does not resolve it by itself. */
  wasm?: string | URL | Request | Response | WebAssembly.Module;
}

export interface Session {
  userId: string;
  email: string;
  /** The roles an administrator gave the user, as of the last sign-in or refresh. */
  roles: string[];
  sessionId: string;
  /** Access-token expiry, `Date.now()` milliseconds (local clock). */
  expiresAt: number;
  /** When the session itself ends unless refreshed, `Date.now()` milliseconds. */
  refreshExpiresAt: number;
}

/**
 * A sign-in of an account with a second factor: no session yet. `baton.verifyMfa` (from
 * `baton-auth/mfa`) finishes it within 5 minutes.
 */
export interface MfaRequired {
  mfaRequired: true;
  /** What may prove it: "totp", "recovery_code". */
  methods: string[];
}

export interface User {
  id: string;
  email: string;
  /** Unix seconds. */
  created_at: number;
}

export interface BatonStatus {
  expiresAt: number | null;
  nextRefreshAt: number | null;
  refreshing: boolean;
  refreshCount: number;
  lastRefreshMs: number | null;
  skewMs: number | null;
}

export type BatonErrorCode =
  | "validation_failed" | "email_taken" | "registration_closed" | "invalid_credentials"
  | "account_locked" | "rate_limited" | "refresh_token_invalid" | "refresh_token_reused"
  | "session_expired" | "session_revoked" | "device_mismatch" | "csrf_check_failed"
  | "token_missing" | "token_invalid" | "token_expired" | "token_revoked" | "dpop_proof_invalid" | "invalid_code" | "email_unavailable" | "not_found"
  | "forbidden" | "unavailable" | "invalid_request" | "payload_too_large" | "internal"
  | "network_error" | "cors_error" | "timeout" | "aborted" | "session_missing" | "storage_unavailable"
  | "invalid_options" | "disposed"
  | (string & {});

export class BatonError extends Error {
  readonly name: "BatonError";
  /** Stable code; server codes pass through unchanged. */
  readonly code: BatonErrorCode;
  /** HTTP status, 0 when no response arrived. */
  readonly status: number;
  /** Whether trying again later may succeed. */
  readonly retryable: boolean;
  /** Seconds the server asked to wait (429, 503). */
  readonly retryAfter?: number;
  constructor(code: string, message?: string, status?: number, retryable?: boolean, retryAfter?: number);
}

/** True for a BatonError, also one from another copy of the package. */
export function isBatonError(value: unknown): value is BatonError;

export interface BatonEvents {
  signedIn: { session: Session };
  refreshed: { session: Session; source: "local" | "otherTab"; latencyMs?: number };
  signedOut: { reason: "logout" | "otherTab" | "sessionEnded" };
  sessionExpired: { code: string };
  error: BatonError;
  /**
   * `baton.session` may have changed (sign-in, refresh, sign-out, in this tab or another); also
   * sent once right after `create` with the initial session. For
   * `useSyncExternalStore((cb) => baton.on("change", cb), () => baton.session)`.
   */
  change: { session: Session | null };
  /**
   * An API answered 401 to an access token fresh from a refresh: it refuses valid tokens
   * (check its issuer, audience and key settings). `baton.fetch` returns its 401 from then on
   * instead of refreshing again.
   */
  tokenRejected: Record<string, never>;
}

export class Baton {
  private constructor(token: never);
  static create(options: BatonOptions): Promise<Baton>;
  register(email: string, password: string): Promise<User>;
  /**
   * Signs in. `rememberMe: false` (default): the session ends when the browser closes;
   * `true`: it survives restarts, up to the server's remember-me lifetime.
   */
  login(email: string, password: string, options?: { rememberMe?: boolean }): Promise<Session | MfaRequired>;
  /**
   * Mails a 6-digit sign-in code and a sign-in link to `email` (baton-server's email sign-in).
   * Resolves whether or not the address has an account; rejects with `rate_limited`,
   * `validation_failed` or `email_unavailable` (the server has no mail set up).
   */
  requestCode(email: string): Promise<void>;
  /** Signs in with the code of the mail, like `login`; a wrong or used code is `invalid_code`. */
  verifyCode(email: string, code: string, options?: { rememberMe?: boolean }): Promise<Session | MfaRequired>;
  /**
   * Signs in with the mailed link's token (the `token` query parameter of the page the link
   * opened), like `login`; a used or expired link is `invalid_code`.
   */
  verifyMagicLink(token: string, options?: { rememberMe?: boolean }): Promise<Session | MfaRequired>;
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  getAccessToken(): Promise<string>;
  refresh(): Promise<Session>;
  logout(): Promise<void>;
  logoutAll(): Promise<void>;
  on<E extends keyof BatonEvents>(event: E, listener: (detail: BatonEvents[E]) => void): () => void;
  readonly session: Session | null;
  readonly deviceId: string;
  status(): BatonStatus;
  dispose(): void;
}

export default Baton;
