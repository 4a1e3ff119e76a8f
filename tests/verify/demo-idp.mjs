// The demo's identity provider (`cargo xtask demo`): the certified `oidc-provider` on loopback,
// as the end-to-end tests run it (e2e/idp.mjs). Any name signs in (as NAME@idp.test, verified).
// Usage: node demo-idp.mjs PORT REDIRECT_URI; the client secret comes in DEMO_IDP_SECRET.
import { startIdp } from "../e2e/idp.mjs";

const [port, redirectUri] = process.argv.slice(2);
const idp = await startIdp({ port: Number(port), redirectUris: [redirectUri], clientId: "baton-demo", clientSecret: process.env.DEMO_IDP_SECRET });
console.log(`issuer ${idp.issuer}`);
