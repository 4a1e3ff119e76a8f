// An Express API that accepts Baton's tokens with baton-auth/server, as docs/api.md shows it.
// `startExpress({ baton, secret, origin, server })`: `server` is the baton-auth/server module.
import express from "express";

export async function startExpress({ baton, secret, origin, server }) {
  const verifier = server.createVerifier({
    issuer: baton, // Baton's BATON_PUBLIC_URL
    introspectionSecret: secret, // turns on the revocation feed
  });
  const app = express();
  app.use((req, res, next) => {
    res.set({
      "access-control-allow-origin": origin,
      "access-control-allow-headers": "authorization, dpop, x-device-id",
      "access-control-expose-headers": "www-authenticate",
    });
    req.method === "OPTIONS" ? res.sendStatus(204) : next();
  });
  app.get("/orders", verifier.express(), (req, res) => {
    res.json({ api: "express", user: req.baton.sub });
  });
  app.get("/reports", verifier.express(), (req, res) => {
    if (!req.baton.roles?.includes("admin")) {
      return res.status(403).json({ error: { code: "forbidden", message: "admins only" } });
    }
    res.json({ api: "express", reports: [] });
  });
  app.get("/payouts", verifier.express(), (req, res) => {
    if ((req.baton.aal ?? 1) < 2) {
      return res.status(403).json({ error: { code: "step_up_required", message: "a second factor is needed" } });
    }
    res.json({ api: "express", sent: true });
  });
  const listener = await new Promise((ok) => {
    const l = app.listen(0, "127.0.0.1", () => ok(l));
  });
  return {
    url: `http://127.0.0.1:${listener.address().port}`,
    stop: () => {
      verifier.close();
      listener.close();
    },
  };
}
