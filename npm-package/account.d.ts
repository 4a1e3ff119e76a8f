// baton-auth/account: importing it adds these methods to every Baton client.
import "baton-auth";

/** The account as `GET /auth/me` shows it. */
export interface Account {
  id: string;
  email: string;
  /** Unix seconds. */
  created_at: number;
  email_verified: boolean;
  roles: string[];
  user_metadata: Record<string, unknown>;
  app_metadata: Record<string, unknown>;
  /** Unix seconds, or null. */
  last_sign_in_at: number | null;
  /** null, "forever", or an RFC 3339 time. */
  disabled_until: string | null;
}

declare module "baton-auth" {
  interface Baton {
    /** The account as the server has it now. */
    getUser(): Promise<Account>;
    /** Rejects with code `invalid_credentials` for a wrong current password (counted by the lockout). */
    changePassword(current: string, next: string): Promise<void>;
    /** Mails a confirmation link to the new address. */
    changeEmail(newEmail: string): Promise<void>;
    /** Rejects with `email_taken` when another account took the address meanwhile. */
    confirmEmailChange(token: string): Promise<void>;
    updateUser(changes: { userMetadata: Record<string, unknown> }): Promise<Account>;
    /** Without a password: an account that has none, signed in at most 5 minutes ago. */
    deleteAccount(options?: { password?: string }): Promise<void>;
  }
}
