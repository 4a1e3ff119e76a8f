// Rendered on the server: ten components read the session at once.
import { getSession } from "baton-auth/next";
import Account from "../account";

export const dynamic = "force-dynamic";

async function Panel({ n }) {
  const session = await getSession();
  return <li className="panel">{`panel ${n}: ${session ? session.user.id : "nobody"}`}</li>;
}

export default async function Dashboard() {
  const session = await getSession();
  return (
    <main>
      <h1>Dashboard</h1>
      <p id="who">{session ? `signed in as ${session.user.id}` : "nobody is signed in"}</p>
      <ul>
        {Array.from({ length: 10 }, (_, n) => (
          <Panel key={n} n={n} />
        ))}
      </ul>
      <Account />
    </main>
  );
}
