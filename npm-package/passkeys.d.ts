// baton-auth/passkeys: importing it adds these methods to every Baton client.
import "baton-auth";
import type { Session } from "baton-auth";

/** A passkey as the server lists it. */
export interface Passkey {
  id: string;
  name: string;
  /** Unix seconds. */
  created_at: number;
  /** Unix seconds; null until it first signs in. */
  last_used_at: number | null;
}

export interface PasskeySignInOptions {
  /** The longer session lifetime and a persistent cookie. */
  rememberMe?: boolean;
  /**
   * Conditional mediation: the browser offers the passkeys in the page's
   * `<input autocomplete="username webauthn">` instead of a dialog; the promise settles when
   * the user picks one (start it when the page loads; abort it with `signal`).
   */
  autofill?: boolean;
  signal?: AbortSignal;
}

declare module "baton-auth" {
  namespace Baton {
    /** Whether this browser can create and use passkeys (WebAuthn). */
    function passkeysSupported(): boolean;
  }
  interface Baton {
    /**
     * Creates a passkey for the signed-in user (the browser asks them to confirm). Rejects with
     * the browser's `NotAllowedError` when they cancel, with `passkey_invalid` when the server
     * refuses it.
     */
    registerPasskey(options?: { name?: string; signal?: AbortSignal }): Promise<Passkey>;
    /**
     * Signs in with a passkey the user picks, without an email: a session at assurance level 2
     * (`amr: ["webauthn"]`). Rejects with `passkey_invalid` when the server refuses the passkey
     * (removed, or a copy suspected), with the browser's `NotAllowedError` when the user cancels.
     */
    signInWithPasskey(options?: PasskeySignInOptions): Promise<Session>;
    /** A passkey's answer, for `verifyMfa` and `stepUp` of baton-auth/mfa. */
    passkeyFactor(options?: { signal?: AbortSignal }): Promise<{ passkey: { challenge_id: string; credential: unknown } }>;
    listPasskeys(): Promise<Passkey[]>;
    renamePasskey(id: string, name: string): Promise<Passkey>;
    /** Rejects with `not_found` for a passkey that is not this user's. */
    removePasskey(id: string): Promise<void>;
  }
}
