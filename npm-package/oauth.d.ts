// baton-auth/oauth: importing it adds these methods to every Baton client.
import "baton-auth";
import type { Session, MfaRequired } from "baton-auth";

/** A provider the server has set up. */
export interface IdentityProvider {
  /** The name in URLs and in `signInWith`. */
  name: string;
  display_name: string;
  kind: "oidc" | "github";
}

/** An identity linked to the signed-in account. */
export interface Identity {
  provider: string;
  /** The provider's id for the user. */
  subject: string;
  email: string | null;
  /** Unix seconds. */
  created_at: number;
  last_used_at: number | null;
}

declare module "baton-auth" {
  interface Baton {
    identityProviders(): Promise<IdentityProvider[]>;
    /**
     * Sends the browser to the provider's sign-in page. It comes back to `redirectTo` (default:
     * this page, without its query), which the server must allow (BATON_REDIRECT_ALLOWLIST);
     * call `handleRedirect()` there.
     */
    signInWith(provider: string, options?: { redirectTo?: string }): void;
    /**
     * On the page a provider sign-in returns to: removes `baton_*` from the URL and trades the
     * one-time code for the session, or `{ mfaRequired }` when the account has a second factor
     * (finish with baton-auth/mfa). After `linkIdentity`: `{ linked: provider }`. Rejects with a
     * BatonError whose code is the flow's refusal: `access_denied`, `invalid_state`,
     * `provider_error`, `email_unverified`, `registration_closed`, `identity_taken`, or
     * `invalid_code` (the code was used, or is from another browser). Null when the page is no
     * return from a provider.
     */
    handleRedirect(options?: { rememberMe?: boolean }): Promise<Session | MfaRequired | { linked: string } | null>;
    listIdentities(): Promise<Identity[]>;
    /** Adds a provider's identity to the signed-in account (the browser goes there and back). */
    linkIdentity(provider: string, options?: { redirectTo?: string }): Promise<void>;
    /** Rejects with `invalid_request` when it is the account's last way to sign in. */
    unlinkIdentity(provider: string): Promise<void>;
  }
}
