import Account from "./account";

export default function Home() {
  return (
    <main>
      <h1>Baton in a Next.js app</h1>
      <Account />
      <p><a href="/dashboard">Dashboard (rendered on the server)</a></p>
    </main>
  );
}
