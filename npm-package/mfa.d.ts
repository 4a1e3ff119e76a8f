// baton-auth/mfa: importing it adds these methods to every Baton client.
import "baton-auth";
import type { Session } from "baton-auth";

/**
 * A second factor: a code of the authenticator app, one of the recovery codes, or a passkey
 * (`await baton.passkeyFactor()` of baton-auth/passkeys).
 */
export type SecondFactor = { totp: string } | { recoveryCode: string } | { passkey: { challenge_id: string; credential: unknown } };

export interface TotpEnrollment {
  factorId: string;
  /** Base32, to type into an authenticator app. */
  secret: string;
  /** `otpauth://totp/...`, to show as a QR code. */
  otpauthUrl: string;
}

declare module "baton-auth" {
  interface Baton {
    /**
     * Finishes a sign-in that resolved to `{ mfaRequired: true }` (within 5 minutes, in this
     * browser). A wrong factor rejects with `invalid_code`; five in a row with `account_locked`.
     */
    verifyMfa(factor: SecondFactor): Promise<Session>;
    enrollTotp(): Promise<TotpEnrollment>;
    /** Resolves to the ten recovery codes: show them once. */
    confirmTotp(code: string, factorId?: string): Promise<string[]>;
    /** Level 2 for `BATON_STEP_UP_TTL`: resolves to the refreshed session. */
    stepUp(factor: SecondFactor): Promise<Session>;
    newRecoveryCodes(factor: SecondFactor): Promise<string[]>;
    mfaFactors(): Promise<{ factors: { id: string; kind: string; created_at: number }[]; recovery_codes_left: number }>;
    /** Rejects with `step_up_required` below level 2. */
    removeMfaFactor(id: string): Promise<void>;
  }
}
