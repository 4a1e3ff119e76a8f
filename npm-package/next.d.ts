// baton-auth/next: Baton in a Next.js App Router app.
import type { BatonServerOptions, ServerSession } from "baton-auth/server";

/**
 * The middleware (`middleware.js`, or `proxy.js` on Next 16): serves Baton's endpoints under
 * `/auth/` on the app's origin and refreshes an expiring session before the page renders.
 * `baseUrl`, `introspectionSecret` and `refreshMargin` default to the environment's
 * `BATON_URL`, `BATON_INTROSPECTION_TOKEN` and `BATON_REFRESH_MARGIN`.
 */
export declare function batonMiddleware(options?: Partial<BatonServerOptions>): (request: Request) => Promise<Response>;

/** The signed-in session in a server component, route handler or server action; or null. */
export declare function getSession(options?: Partial<BatonServerOptions>): Promise<ServerSession | null>;
