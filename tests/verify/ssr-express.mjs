// An Express app that renders on the server with Baton's session, as docs/ssr.md shows it.
// `startSsrExpress({ baton, secret, server })`: `server` is the baton-auth/server module.
import express from "express";
import { Readable } from "node:stream";

export async function startSsrExpress({ baton, secret, server }) {
  const auth = server.createBatonServer({ baseUrl: baton, introspectionSecret: secret });

  // Express's request as a Web Request (the body streamed on as it is).
  const toRequest = (req) =>
    new Request(`${req.protocol}://${req.get("host")}${req.originalUrl}`, {
      method: req.method,
      headers: Object.entries(req.headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]])),
      body: req.method === "GET" || req.method === "HEAD" ? undefined : Readable.toWeb(req),
      duplex: "half",
    });

  const app = express();
  // Baton's endpoints on the app's origin.
  app.use("/auth", async (req, res, next) => {
    const answer = await auth.proxy(toRequest(req), { clientIp: req.ip });
    if (!answer) return next();
    res.status(answer.status);
    for (const [k, v] of answer.headers) if (k !== "set-cookie") res.set(k, v);
    res.append("set-cookie", answer.headers.getSetCookie());
    res.send(Buffer.from(await answer.arrayBuffer()));
  });
  // A page rendered with the session (refreshed when it is about to expire).
  app.get("/account", async (req, res) => {
    const { session, headers } = await auth.session(toRequest(req));
    res.append("set-cookie", headers.getSetCookie());
    res.send(session ? `<p>Signed in as ${session.user.id}</p>` : `<p><a href="/sign-in">Sign in</a></p>`);
  });

  return new Promise((ok) => {
    const listener = app.listen(0, "127.0.0.1", () => {
      ok({ url: `http://localhost:${listener.address().port}`, close: () => (auth.close(), listener.close()) });
    });
  });
}
