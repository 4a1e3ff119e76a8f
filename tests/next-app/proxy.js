// Next 16's proxy (the middleware of earlier versions): Baton's endpoints on this origin, and
// an expiring session refreshed before the page renders.
import { batonMiddleware } from "baton-auth/next";

export const proxy = batonMiddleware({ refreshMargin: Number(process.env.BATON_REFRESH_MARGIN ?? 30) });
export const config = { matcher: ["/auth/:path*", "/dashboard"] };
