// A small React app on baton-auth/react, built by Vite from the packed package (see
// e2e/react.test.mjs). No JSX, so it needs no Vite plugin. Under StrictMode on purpose.
import { StrictMode, createElement as h, useState } from "react";
import { createRoot } from "react-dom/client";
import { BatonProvider, useBaton, useSession } from "baton-auth/react";

const params = new URLSearchParams(location.search);
const email = params.get("email") || "react@example.com";
const password = "correct horse battery";
let renders = 0;

function App() {
  const baton = useBaton();
  const session = useSession();
  const [error, setError] = useState("");
  renders++;
  window.app = { baton, renders: () => renders };
  const run = (f) => () => f().then(() => setError(""), (e) => setError(e.code || String(e)));
  return h(
    "main",
    null,
    h("p", { id: "state" }, session ? `signed in as ${session.email}` : "signed out"),
    h("p", { id: "expires" }, session ? String(session.expiresAt) : ""),
    h("p", { id: "error" }, error),
    h("button", { id: "login", onClick: run(() => baton.register(email, password).then(() => baton.login(email, password))) }, "sign up and log in"),
    h("button", { id: "refresh", onClick: run(() => baton.refresh()) }, "refresh"),
    h("button", { id: "logout", onClick: run(() => baton.logout()) }, "log out"),
  );
}

const root = createRoot(document.getElementById("root"));
window.unmountApp = () => root.unmount();
root.render(
  h(
    StrictMode,
    null,
    h(
      BatonProvider,
      { options: { baseUrl: location.origin }, fallback: h("p", { id: "loading" }, "loading") },
      h(App),
    ),
  ),
);
