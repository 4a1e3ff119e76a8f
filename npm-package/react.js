// baton-auth/react: React bindings. React is an optional peer dependency; only this entry
// point imports it.
import { createContext, createElement, useContext, useEffect, useRef, useState, useSyncExternalStore } from "react";
import { Baton } from "./index.js";

const Context = createContext(null);

// A client the provider created is disposed one macrotask after the provider's effect is
// cleaned up, unless the effect runs again first: StrictMode's simulated unmount and remount
// (cleanup, then setup, synchronously) keeps the one client, a real unmount disposes it.
function retain(entry) {
  clearTimeout(entry.timer);
  entry.timer = undefined;
}
function release(entry) {
  entry.timer = setTimeout(() => {
    entry.disposed = true;
    entry.promise.then((b) => b.dispose(), () => {});
  });
}

/**
 * Makes a Baton client available to `useBaton()` and `useSession()` below it.
 * Props: `client` (a Baton, or a promise of one, created by you) or `options` (for
 * `Baton.create`, called once); `fallback` is rendered until the client is ready. An error
 * from `Baton.create` is thrown during render, for an error boundary.
 */
export function BatonProvider({ client, options, fallback = null, children }) {
  if (client === undefined && (options === null || typeof options !== "object")) {
    throw new TypeError("<BatonProvider> needs a `client` or an `options` object for Baton.create");
  }
  // Read once, on mount: later changes of `client` or `options` are ignored.
  const props = useRef({ client, options });
  const entry = useRef(null);
  const [state, setState] = useState({ baton: null, error: null });
  useEffect(() => {
    let e = entry.current;
    if (e === null || e.disposed) {
      const { client, options } = props.current;
      const own = client === undefined;
      // Created in the effect, never during render: React may render twice and keep one.
      const promise = own ? Baton.create(options) : Promise.resolve(client);
      e = entry.current = { own, promise };
    }
    let live = true;
    if (e.own) retain(e);
    e.promise.then(
      (baton) => live && setState((s) => (s.baton === baton ? s : { baton, error: null })),
      (error) => live && setState({ baton: null, error }),
    );
    return () => {
      live = false;
      if (e.own) release(e);
    };
  }, []);
  if (state.error) throw state.error;
  if (!state.baton) return fallback;
  return createElement(Context.Provider, { value: state.baton }, children);
}

/** The Baton client of the nearest `<BatonProvider>`. */
export function useBaton() {
  const baton = useContext(Context);
  if (!baton) throw new Error("useBaton() and useSession() must be used inside <BatonProvider>");
  return baton;
}

/** The current session (`baton.session`), or null; re-renders when it changes. */
export function useSession() {
  const baton = useBaton();
  return useSyncExternalStore(
    (onChange) => baton.on("change", onChange),
    () => baton.session,
    () => null,
  );
}
