// The React example of npm-package/README.md, as written (end-to-end test 29 finds it here;
// test 13 builds this page with Vite, where "https://auth.example.com" becomes the page's
// origin, and signs in and out through it). Above the example: what it leaves to the app.
import { createRoot } from "react-dom/client";

const PASSWORD = "correct horse battery";
const Spinner = () => <p id="loading">loading</p>;

function App() {
  return <Account />;
}

function Login() {
  const baton = useBaton();
  const email = new URLSearchParams(location.search).get("email");
  const signIn = () => baton.register(email, PASSWORD).then(() => baton.login(email, PASSWORD));
  return (
    <button id="login" onClick={signIn}>
      sign in
    </button>
  );
}

const root = createRoot(document.getElementById("root"));

// The example:
import { BatonProvider, useBaton, useSession } from "baton-auth/react";

root.render(
  <BatonProvider options={{ baseUrl: "https://auth.example.com" }} fallback={<Spinner />}>
    <App />
  </BatonProvider>,
);

function Account() {
  const baton = useBaton();     // the client, for login, logout, fetch
  const session = useSession(); // re-renders when the session changes; null when signed out
  return session ? <button onClick={() => baton.logout()}>{session.email}</button> : <Login />;
}
