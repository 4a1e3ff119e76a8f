// baton-auth/next: Baton in a Next.js App Router app, over baton-auth/server.
//
//   // proxy.js (middleware.js before Next 16)
//   export const proxy = batonMiddleware(); // BATON_URL, BATON_INTROSPECTION_TOKEN, BATON_REFRESH_MARGIN
//   // a server component
//   const session = await getSession();
//
// The middleware serves Baton's endpoints on the app's origin and refreshes an expiring
// session before the page renders, handing the new cookies both to this render and to the
// browser; server components then read the session without refreshing (they cannot set
// cookies).
import { NextResponse } from "next/server";
import { createBatonServer } from "./server.js";

const servers = new Map();
function server(options = {}) {
  const baseUrl = options.baseUrl ?? globalThis.process?.env?.BATON_URL;
  if (!baseUrl) throw new TypeError("baton-auth/next needs `baseUrl` (or BATON_URL): where baton-server listens");
  const env = globalThis.process?.env ?? {};
  const introspectionSecret = options.introspectionSecret ?? env.BATON_INTROSPECTION_TOKEN;
  const margin = options.refreshMargin ?? (env.BATON_REFRESH_MARGIN ? Number(env.BATON_REFRESH_MARGIN) : undefined);
  const all = { ...options, baseUrl, introspectionSecret, refreshMargin: margin };
  const key = JSON.stringify(all);
  if (!servers.has(key)) servers.set(key, createBatonServer(all));
  return servers.get(key);
}

// The request's Cookie header with the cookies of `setCookies` put in (or taken out).
function withCookies(header, setCookies) {
  const jar = new Map();
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) jar.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  for (const line of setCookies) {
    const [pair] = line.split(";");
    const i = pair.indexOf("=");
    const [name, value] = [pair.slice(0, i), pair.slice(i + 1)];
    if (/;\s*Max-Age=0\b/i.test(line)) jar.delete(name);
    else jar.set(name, value);
  }
  return [...jar].map(([n, v]) => `${n}=${v}`).join("; ");
}

/** The middleware (Next 16: the proxy): Baton's endpoints, and the session refreshed. */
export function batonMiddleware(options) {
  return async function middleware(request) {
    const auth = server(options);
    const proxied = await auth.proxy(request);
    if (proxied) return proxied;
    const { headers } = await auth.session(request);
    const set = headers.getSetCookie();
    if (!set.length) return NextResponse.next();
    // This render sees the new cookies; the browser keeps them.
    const forward = new Headers(request.headers);
    forward.set("cookie", withCookies(request.headers.get("cookie"), set));
    const res = NextResponse.next({ request: { headers: forward } });
    for (const c of set) res.headers.append("set-cookie", c);
    return res;
  };
}

/** The session of this request in a server component, route handler or server action; or null. */
export async function getSession(options) {
  const { cookies } = await import("next/headers");
  const store = await cookies();
  const cookie = store
    .getAll()
    .map((c) => `${c.name}=${encodeURIComponent(c.value)}`)
    .join("; ");
  const { session } = await server(options).session(new Request("http://localhost/", { headers: { cookie } }), { refresh: false });
  return session;
}
