"use client";
// The browser's side: baton-auth on this app's origin (the proxy forwards to baton-server),
// the refresh token in the HttpOnly cookie, Bearer (a server render cannot hold the browser's
// DPoP key).
import { useEffect, useState } from "react";
import { Baton } from "baton-auth";

export default function Account() {
  const [state, setState] = useState({ status: "loading" });
  useEffect(() => {
    let baton;
    Baton.create({ baseUrl: location.origin, refreshTransport: "cookie", dpop: false }).then(async (b) => {
      baton = b;
      window.__baton = b;
      const render = async () => {
        if (!b.session) return setState({ status: "signed-out" });
        // baton.fetch: the access token goes along (and is refreshed when needed).
        const me = await (await b.fetch("/auth/me")).json();
        setState({ status: "signed-in", email: me.user.email });
      };
      b.on("signedIn", render);
      b.on("signedOut", render);
      await render();
    });
    return () => baton && baton.dispose();
  }, []);
  return (
    <section>
      <p id="status">{state.status}</p>
      {state.email && <p id="email">{state.email}</p>}
      {state.status === "signed-in" && (
        <button id="logout" onClick={() => window.__baton.logout()}>
          Sign out
        </button>
      )}
    </section>
  );
}
