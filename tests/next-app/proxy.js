// Next 16's proxy (the middleware of earlier versions): Baton's endpoints on this origin, and
// an expiring session refreshed before the page renders. Settings from the environment:
// BATON_URL, BATON_INTROSPECTION_TOKEN, BATON_REFRESH_MARGIN.
import { batonMiddleware } from "baton-auth/next";

export const proxy = batonMiddleware();
export const config = { matcher: ["/auth/:path*", "/dashboard"] };
