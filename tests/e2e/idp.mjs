// An OpenID provider on loopback for the tests and the demo: the certified npm `oidc-provider`
// with one confidential client, PKCE required, its development sign-in and consent pages (any
// login name signs in as that account; its address is NAME@idp.test, verified, unless
// `accounts` says otherwise), RS256 keys made at start. `tamper(fn)` rewrites the claims of
// the next ID token, signed again with the provider's own key: a token whose signature
// verifies but whose claims are wrong.
import Provider from "oidc-provider";
import * as jose from "jose";
import { createServer } from "node:http";

export async function startIdp({ port, redirectUris, clientId = "baton", clientSecret = "baton-e2e-secret", accounts = {} }) {
  const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await jose.exportJWK(privateKey)), kid: "k1", use: "sig", alg: "RS256" };
  const issuer = `http://127.0.0.1:${port}`;
  let tamper = null;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
    }],
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    claims: { openid: ["sub"], email: ["email", "email_verified"] },
    cookies: { keys: ["baton-e2e-idp-cookies"] },
    findAccount: (ctx, id) => ({
      accountId: id,
      claims: () => ({ sub: id, email: accounts[id]?.email ?? `${id}@idp.test`, email_verified: accounts[id]?.verified ?? true }),
    }),
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === "/token" && tamper && ctx.body && ctx.body.id_token) {
      const change = tamper;
      tamper = null;
      const claims = change(jose.decodeJwt(ctx.body.id_token));
      ctx.body.id_token = await new jose.SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "k1" }).sign(privateKey);
    }
  });
  const server = createServer(provider.callback());
  await new Promise((ok) => server.listen(port, "127.0.0.1", ok));
  return {
    issuer,
    clientId,
    clientSecret,
    accounts,
    tamper(fn) {
      tamper = fn;
    },
    stop: () => new Promise((ok) => server.close(ok)),
  };
}

/** Signs in as `login` on the provider's development pages open in `page`, and consents. */
export async function throughProvider(page, login) {
  await page.waitForSelector("input[name=login]");
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any password");
  await page.click("button[type=submit]");
  // The consent page (the first time this account meets the client).
  await page.waitForSelector("button[type=submit]");
  if (/consent|authorize/i.test(await page.content())) await page.click("button[type=submit]");
}
