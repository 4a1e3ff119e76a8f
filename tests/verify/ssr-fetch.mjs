// A server-rendered app over Web Request and Response (Deno, Bun, Cloudflare Workers, Node
// with a fetch adapter), as docs/ssr.md shows it.
export function app(auth) {
  return async function handle(request) {
    // Baton's endpoints, on the app's origin.
    const proxied = await auth.proxy(request);
    if (proxied) return proxied;
    // Any page: who is signed in (refreshed when needed); the cookies go back with the page.
    const { session, headers } = await auth.session(request);
    headers.set("content-type", "text/html; charset=utf-8");
    const body = session ? `<p>Signed in as ${session.user.id}</p>` : `<p>Signed out</p>`;
    return new Response(body, { headers });
  };
}
