// Types of baton-auth/react.
import type { ReactNode } from "react";
import type { Baton, BatonOptions, Session } from "./index.js";

export interface BatonProviderProps {
  /** A client you created (or a promise of one); the provider does not dispose it. */
  client?: Baton | Promise<Baton>;
  /** Options for `Baton.create`, when the provider should create (and later dispose) the client. */
  options?: BatonOptions;
  /** Rendered until the client is ready. */
  fallback?: ReactNode;
  children?: ReactNode;
}

/** Makes a Baton client available to `useBaton()` and `useSession()`. StrictMode-safe. */
export function BatonProvider(props: BatonProviderProps): ReactNode;

/** The Baton client of the nearest `<BatonProvider>`. */
export function useBaton(): Baton;

/** The current session, or null; re-renders when it changes. */
export function useSession(): Session | null;
