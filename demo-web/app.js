// The Baton demo: everything here uses the public baton-auth API, as an application would.
import { Baton, isBatonError } from "baton-auth";
import "baton-auth/mfa";
import "baton-auth/passkeys";
import "baton-auth/oauth";
import { drawQr } from "/qr.js";

const $ = (id) => document.getElementById(id);
const PREFS = "baton-demo:prefs";
const prefs = JSON.parse(localStorage.getItem(PREFS) || "{}");
const params = new URLSearchParams(location.search);
const demo = { baton: null, events: [], calls: { ok: 0, failed: 0 }, start: (t) => start(t) };
// The orders service (verify/examples/demo-api.rs): a backend of its own that accepts Baton's
// tokens with baton-verify. `cargo xtask demo` starts it on the port after the page's;
// `?api=URL` points elsewhere.
const API = params.get("api") || (location.port ? `${location.protocol}//${location.hostname}:${Number(location.port) + 1}` : null);
window.__demo = demo; // for the end-to-end tests and for poking around in devtools

function fmtSeconds(ms) {
  if (ms == null) return "–";
  const s = Math.max(0, ms / 1000);
  if (s < 60) return `${s.toFixed(1)} s`;
  const whole = Math.round(s); // rounded once: never "14 min 60 s"
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}
function fmtTime(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}
function describe(e) {
  return isBatonError(e) ? `${e.code}${e.status ? ` (${e.status})` : ""}: ${e.message}` : String(e);
}

function logEvent(name, detail) {
  demo.events.push({ name, detail, at: Date.now() });
  const li = document.createElement("li");
  li.className = `ev-${name}`;
  const extra = detail && (detail.code || detail.reason || detail.source) ? ` ${detail.code || detail.reason || detail.source}` : "";
  li.textContent = `${new Date().toLocaleTimeString()}  ${name}${extra}`;
  $("event-log").prepend(li);
  while ($("event-log").children.length > 100) $("event-log").lastChild.remove();
}

async function start(transport) {
  if (autofill) autofill.abort();
  autofill = null;
  if (demo.baton) demo.baton.dispose();
  const baton = await Baton.create({
    baseUrl: location.origin,
    refreshTransport: transport,
    storageKey: `baton-demo:${transport}`,
    // The token may go to the orders service too (and nowhere else).
    allowedOrigins: API ? [new URL(API).origin] : [],
    // `?margin=3` shows refreshes early with short-lived tokens.
    ...(params.has("margin") ? { refreshMargin: Number(params.get("margin")) } : {}),
    // DPoP binds the session to this browser's key (the default); `?dpop=off` shows Bearer.
    ...(params.get("dpop") === "off" ? { dpop: false } : {}),
  });
  demo.baton = baton;
  for (const name of ["signedIn", "refreshed", "signedOut", "sessionExpired", "error"]) {
    baton.on(name, (detail) => {
      logEvent(name, detail);
      if (name === "signedIn" || name === "signedOut") render();
      if (name === "sessionExpired") {
        $("auth-error").textContent =
          detail.code === "session_revoked"
            ? "You were signed out: this session was ended from another device."
            : detail.code === "refresh_token_reused"
              ? "You were signed out: your refresh token was used twice (by this browser and by someone who copied it), so Baton ended the whole session, the copy's tokens with it."
              : `You were signed out (${detail.code}).`;
        render();
      }
      if (name === "refreshed") loadLists();
    });
  }
  render();
}

// Whether the access token is bound to this browser's key (DPoP) or a bearer token.
async function showBinding() {
  try {
    const token = await demo.baton.getAccessToken();
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    $("binding").textContent = claims.cnf ? "DPoP: bound to this browser's key" : "Bearer: any holder can use it";
  } catch {
    $("binding").textContent = "–";
  }
}

function render() {
  const session = demo.baton && demo.baton.session;
  document.body.dataset.state = session ? "signed-in" : "signed-out";
  $("landing").hidden = !!session;
  $("app").hidden = !session;
  if (session) {
    // Signed in some other way: the passkey request in the email field ends.
    if (autofill) autofill.abort();
    autofill = null;
    // The sign-in form starts afresh after this session ends.
    $("code-step").hidden = true;
    $("code").value = "";
    $("auth-error").textContent = "";
    $("who").textContent = session.email;
    $("device-id").textContent = demo.baton.deviceId;
    $("session-id").textContent = session.sessionId;
    showBinding();
    loadLists();
  } else {
    // Nothing of the previous session stays on screen.
    demo.calls = { ok: 0, failed: 0 };
    $("calls-ok").textContent = "0";
    $("calls-failed").textContent = "0";
    $("api-result").textContent = "No calls yet.";
    $("sessions-list").replaceChildren();
    $("audit-list").replaceChildren();
    $("passkey-list").replaceChildren();
    armAutofill();
  }
}

function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

// "Chrome 131 on Windows" from a user agent (enough for a list of your own sessions).
function deviceName(ua) {
  if (!ua) return "unknown browser";
  const browser =
    [[/Edg\/(\d+)/, "Edge"], [/OPR\/(\d+)/, "Opera"], [/Firefox\/(\d+)/, "Firefox"], [/(?:Headless)?Chrome\/(\d+)/, "Chrome"], [/Version\/(\d+).*Safari/, "Safari"]]
      .map(([re, name]) => ((m) => m && `${name} ${m[1]}`)(re.exec(ua)))
      .find(Boolean) || "a browser";
  const os =
    [[/iPhone|iPad/, "iOS"], [/Android/, "Android"], [/Windows/, "Windows"], [/Mac OS X|Macintosh/, "macOS"], [/CrOS/, "ChromeOS"], [/Linux/, "Linux"]]
      .find(([re]) => re.test(ua))?.[1];
  return os ? `${browser} on ${os}` : browser;
}

function tick() {
  const b = demo.baton;
  if (!b || !b.session) return;
  const st = b.status();
  const now = Date.now();
  const left = st.expiresAt ? st.expiresAt - now : null;
  // The bar spans the token's life as first seen by this page.
  if (st.expiresAt !== demo.lastExpiry) {
    demo.lastExpiry = st.expiresAt;
    demo.life = st.expiresAt - now;
  }
  const pct = demo.life > 0 ? Math.max(0, Math.min(100, (left / demo.life) * 100)) : 0;
  $("countdown-bar").style.width = `${pct}%`;
  $("countdown-bar").classList.toggle("low", pct < 20);
  $("expires-in").textContent = fmtSeconds(left);
  $("next-refresh").textContent = st.refreshing ? "refreshing now…" : st.nextRefreshAt ? `in ${fmtSeconds(st.nextRefreshAt - now)}` : "–";
  $("refresh-count").textContent = String(st.refreshCount);
  $("refresh-latency").textContent = st.lastRefreshMs == null ? "–" : `${Math.round(st.lastRefreshMs)} ms`;
}

async function api(path, init) {
  const res = await demo.baton.fetch(path, init);
  const body = res.status === 204 ? null : await res.json().catch(() => null);
  return { status: res.status, body };
}

// Calls the orders service; when it is not running, baton-server's own /api/ping.
async function ping() {
  try {
    let r = null;
    let where = "orders service";
    if (API) {
      try {
        r = await api(`${API}/orders`);
        if (r.status === 404) r = null; // something else listens there
      } catch (e) {
        if (e.code !== "network_error" && e.code !== "cors_error") throw e;
      }
    }
    if (!r) {
      r = await api("/api/ping");
      where = "baton-server /api/ping (the orders service is not running)";
    }
    if (r.status === 200) demo.calls.ok++; else demo.calls.failed++;
    $("api-result").textContent = `${where}: ${r.status} ${JSON.stringify(r.body, null, 1)}`;
    return r.status;
  } catch (e) {
    demo.calls.failed++;
    $("api-result").textContent = describe(e);
    return 0;
  } finally {
    $("calls-ok").textContent = demo.calls.ok;
    $("calls-failed").textContent = demo.calls.failed;
  }
}

async function burst() {
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: 20 }, () => ping()));
  const ok = results.filter((s) => s === 200).length;
  const failed = results.length - ok;
  $("api-result").textContent = `${plural(results.length, "concurrent call")}: ${ok} ok${failed ? `, ${failed} failed` : ""} in ${Math.round(performance.now() - started)} ms (one refresh at most)`;
}

async function loadLists() {
  if (!demo.baton || !demo.baton.session) return;
  try {
    const [s, a] = await Promise.all([api("/auth/sessions"), api("/auth/audit-log?limit=30")]);
    renderSessions(s.body ? s.body.sessions : []);
    renderAudit(a.body ? a.body.events : []);
    const m = await demo.baton.mfaFactors();
    const on = m.factors.length > 0;
    $("mfa-status").textContent = on
      ? `On: sign-in asks for a code of your authenticator app (${plural(m.recovery_codes_left, "recovery code")} left).`
      : "Off: add a code from an authenticator app to every sign-in.";
    $("btn-mfa-setup").hidden = on;
    await loadPasskeys();
  } catch (e) {
    logEvent("error", e);
  }
}

// Passkeys: the user's list, adding one, removing one.
async function loadPasskeys() {
  if (!Baton.passkeysSupported() || /^[\d.]+$|^\[/.test(location.hostname)) {
    $("passkey-status").textContent = Baton.passkeysSupported()
      ? `Passkeys belong to a host name, not an IP address: open http://localhost:${location.port}/ to try them.`
      : "This browser has no passkeys.";
    $("btn-passkey-add").hidden = true;
    return;
  }
  $("btn-passkey-add").hidden = false;
  let list;
  try {
    list = await demo.baton.listPasskeys();
  } catch (e) {
    $("passkey-status").textContent = describe(e);
    return;
  }
  $("passkey-status").textContent = list.length
    ? `${plural(list.length, "passkey")}: each signs in without a password or email, at level 2.`
    : "None yet: add one, then sign in without a password.";
  $("passkey-list").replaceChildren(
    ...list.map((p) => {
      const li = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = `${p.name} · added ${fmtTime(p.created_at)}${p.last_used_at ? ` · last used ${fmtTime(p.last_used_at)}` : ""}`;
      const remove = Object.assign(document.createElement("button"), { className: "link", textContent: "remove" });
      remove.dataset.passkey = p.id;
      remove.addEventListener("click", async () => {
        await demo.baton.removePasskey(p.id).catch((e) => ($("passkey-error").textContent = describe(e)));
        loadPasskeys();
      });
      li.append(label, remove);
      return li;
    }),
  );
}

async function addPasskey() {
  $("passkey-error").textContent = "";
  try {
    await demo.baton.registerPasskey({ name: deviceName(navigator.userAgent) });
    loadPasskeys();
  } catch (e) {
    $("passkey-error").textContent = describe(e);
  }
}

// Signed out: the browser offers passkeys in the email field (autofill), until one is picked
// or the button asks with a dialog.
// Passkeys belong to a host name: a page on an IP address (127.0.0.1) cannot use them.
let autofill = null;
let passkeysOff = /^[\d.]+$|^\[/.test(location.hostname);
function armAutofill() {
  if (passkeysOff || autofill || !demo.baton || demo.baton.session || !Baton.passkeysSupported()) return;
  autofill = new AbortController();
  const { signal } = autofill;
  demo.baton
    .signInWithPasskey({ autofill: true, signal, rememberMe: $("remember").checked })
    .then(
      () => signedIn(null),
      (e) => {
        // A server without passkeys says so once; the page stops asking.
        // Nothing picked (or no passkey here) is no error worth showing.
        if (e && e.code === "passkeys_unavailable") passkeysOff = true;
        else if (!signal.aborted && !(e && e.name === "NotAllowedError")) logEvent("error", e);
      },
    )
    .finally(() => autofill && autofill.signal === signal && (autofill = null));
}

// The second step with a passkey instead of a code.
async function mfaPasskey() {
  $("auth-error").textContent = "";
  if (autofill) autofill.abort();
  autofill = null;
  try {
    await demo.baton.verifyMfa(await demo.baton.passkeyFactor());
    signedIn(null);
  } catch (e) {
    $("auth-error").textContent = describe(e);
  }
}

async function passkeySignIn() {
  $("auth-error").textContent = "";
  if (autofill) autofill.abort();
  autofill = null;
  try {
    await demo.baton.signInWithPasskey({ rememberMe: $("remember").checked });
    signedIn(null);
  } catch (e) {
    $("auth-error").textContent = describe(e);
    armAutofill();
  }
}

// Two-factor sign-in: set-up with a QR code, then the recovery codes, shown once.
async function mfaSetup() {
  $("mfa-error").textContent = "";
  try {
    const e = await demo.baton.enrollTotp();
    drawQr($("mfa-qr"), e.otpauthUrl);
    $("mfa-secret").textContent = e.secret;
    $("mfa-enroll").hidden = false;
    $("mfa-codes").hidden = true;
    $("mfa-confirm-code").focus();
  } catch (e) {
    $("mfa-error").textContent = describe(e);
  }
}

async function mfaConfirm() {
  $("mfa-error").textContent = "";
  try {
    const codes = await demo.baton.confirmTotp($("mfa-confirm-code").value.trim());
    $("mfa-recovery").replaceChildren(...codes.map((c) => Object.assign(document.createElement("li"), { textContent: c })));
    $("mfa-enroll").hidden = true;
    $("mfa-codes").hidden = false;
    $("mfa-confirm-code").value = "";
    loadLists();
  } catch (e) {
    $("mfa-error").textContent = describe(e);
  }
}

// After a first factor: a session, or the second-factor step.
function signedIn(result) {
  const wait = !!(result && result.mfaRequired);
  $("mfa-step").hidden = !wait;
  $("btn-mfa-passkey").hidden = !(wait && result.methods.includes("passkey") && Baton.passkeysSupported());
  if (wait) $("mfa-code").focus();
  render();
}

async function verifyMfa() {
  $("auth-error").textContent = "";
  const v = $("mfa-code").value.trim();
  try {
    await demo.baton.verifyMfa(/^\d{6}$/.test(v) ? { totp: v } : { recoveryCode: v });
    $("mfa-code").value = "";
    signedIn(null);
  } catch (e) {
    $("auth-error").textContent = describe(e);
  }
}

function renderSessions(sessions) {
  const ul = $("sessions-list");
  ul.replaceChildren();
  for (const s of sessions) {
    const li = document.createElement("li");
    const label = document.createElement("span");
    label.textContent = `${deviceName(s.user_agent)} · ${s.ip} · since ${fmtTime(s.created_at)}`;
    label.title = s.user_agent || "";
    li.append(label);
    if (s.current) {
      const tag = document.createElement("span");
      tag.className = "tag current";
      // Every tab of this browser shares the session.
      tag.textContent = "this browser";
      li.append(tag);
    } else {
      const btn = document.createElement("button");
      btn.className = "link";
      btn.textContent = "revoke";
      btn.dataset.session = s.id;
      btn.onclick = async () => {
        await api(`/auth/sessions/${encodeURIComponent(s.id)}`, { method: "DELETE" });
        loadLists();
      };
      li.append(btn);
    }
    ul.append(li);
  }
}

function renderAudit(events) {
  const ul = $("audit-list");
  ul.replaceChildren();
  for (const e of events) {
    const li = document.createElement("li");
    const text = document.createElement("span");
    text.textContent = `${new Date(e.at * 1000).toLocaleTimeString()} ${e.type} — ${e.detail}`;
    const tag = document.createElement("span");
    tag.className = `tag ${e.severity}`;
    tag.textContent = e.severity;
    li.append(text, tag);
    ul.append(li);
  }
}

// The thief's side: what a script injected into this page could copy (the refresh token in
// storage, the device id), replayed without this browser's DPoP key, as from another machine.
async function steal() {
  const out = $("api-result");
  const stored = JSON.parse(localStorage.getItem(`baton-demo:${prefs.transport || "body"}`) || "null");
  if (!stored || !stored.refreshToken) {
    out.textContent = "Nothing to copy: the refresh token is in an HttpOnly cookie, which no script on this page can read.";
    return;
  }
  // The thief copies the device id too, and refreshes the way a thief keeps a session alive.
  const replay = (token) =>
    fetch("/auth/refresh", {
      method: "POST",
      credentials: "omit",
      headers: { "Content-Type": "application/json", "X-Device-ID": demo.baton.deviceId },
      body: JSON.stringify({ refresh_token: token }),
    }).then(async (res) => ({ res, body: await res.json().catch(() => null) }));
  const first = await replay(stored.refreshToken);
  if (!first.res.ok) {
    out.textContent =
      `The copied refresh token, replayed: ${first.res.status} ${first.body && first.body.error ? first.body.error.code : ""}. ` +
      "It is bound to this browser's key, which no script can read: you stay signed in, and the attempt is in your audit log.";
    loadLists();
    return;
  }
  // Without DPoP (?dpop=off) the copy works: the thief has a session, and rotates it again.
  const second = await replay(first.body.refresh_token);
  out.textContent =
    `The copied refresh token, replayed: ${first.res.status}, then ${second.res.status}: the thief holds a live session ` +
    "(a Bearer session, ?dpop=off). Now this browser refreshes with the token it holds, which was spent…";
  // The server sees a spent token used again: it revokes the whole session, the thief's
  // newest token included, and this client reports sessionExpired.
  await demo.baton.refresh().catch(() => {});
  const after = await replay(second.body && second.body.refresh_token);
  out.textContent += ` The thief's newest token now: ${after.res.status} ${after.body && after.body.error ? after.body.error.code : ""}.`;
}

// A new client when the chosen refresh-token transport changed.
async function useTransport() {
  const transport = $("transport").value;
  if (transport !== (prefs.transport || "body")) {
    prefs.transport = transport;
    localStorage.setItem(PREFS, JSON.stringify(prefs));
    await start(transport);
  }
}

async function submit(register) {
  const email = $("email").value.trim();
  const password = $("password").value;
  $("auth-error").textContent = "";
  try {
    await useTransport();
    if (register) await demo.baton.register(email, password);
    signedIn(await demo.baton.login(email, password, { rememberMe: $("remember").checked }));
  } catch (e) {
    $("auth-error").textContent = describe(e);
  }
}

// Sign-in by email: a code to type in, or the link of the same mail, which opens this page
// with ?token=... (the server's BATON_MAGIC_LINK_URL).
async function emailCode() {
  const email = $("email").value.trim();
  $("auth-error").textContent = "";
  try {
    await useTransport();
    await demo.baton.requestCode(email);
    $("code-step").hidden = false;
    const local = ["127.0.0.1", "localhost", "[::1]"].includes(location.hostname);
    $("code-note").textContent = `If ${email} may sign in here, a code and a sign-in link are on their way (valid once, for a few minutes).` +
      (local ? " Started with cargo xtask demo? The mail is printed in its terminal." : "");
    $("code").focus();
  } catch (e) {
    $("auth-error").textContent =
      e.code === "email_unavailable"
        ? "This server has no mail set up: start it with BATON_SMTP_URL, BATON_MAIL_FROM and BATON_MAGIC_LINK_URL."
        : describe(e);
  }
}

async function verifyCode() {
  $("auth-error").textContent = "";
  try {
    const result = await demo.baton.verifyCode($("email").value.trim(), $("code").value.trim(), { rememberMe: $("remember").checked });
    $("code").value = "";
    signedIn(result);
  } catch (e) {
    $("auth-error").textContent = describe(e);
  }
}

async function followLink() {
  const token = params.get("token");
  if (!token) return;
  // The token works once: out of the address bar and the history.
  params.delete("token");
  history.replaceState(null, "", location.pathname + (params.size ? `?${params}` : ""));
  try {
    signedIn(await demo.baton.verifyMagicLink(token, { rememberMe: $("remember").checked }));
  } catch (e) {
    $("auth-error").textContent = describe(e);
  }
}

$("btn-code").addEventListener("click", emailCode);
$("btn-verify-mfa").addEventListener("click", verifyMfa);
$("btn-mfa-setup").addEventListener("click", mfaSetup);
$("btn-mfa-confirm").addEventListener("click", mfaConfirm);
$("btn-passkey").addEventListener("click", passkeySignIn);
$("btn-mfa-passkey").addEventListener("click", mfaPasskey);
$("btn-passkey-add").addEventListener("click", addPasskey);
$("btn-verify-code").addEventListener("click", verifyCode);
$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  submit(false);
});
$("btn-register").addEventListener("click", () => submit(true));
$("btn-ping").addEventListener("click", ping);
$("btn-burst").addEventListener("click", burst);
$("btn-tab").addEventListener("click", () => window.open(location.href, "_blank"));
$("btn-steal").addEventListener("click", steal);
$("btn-logout").addEventListener("click", async () => {
  await demo.baton.logout();
  render();
});
$("btn-logout-all").addEventListener("click", async () => {
  try {
    await demo.baton.logoutAll();
  } catch (e) {
    $("api-result").textContent = describe(e);
  }
  render();
});
$("btn-sessions").addEventListener("click", loadLists);
$("btn-audit").addEventListener("click", loadLists);

$("transport").value = prefs.transport || "body";
// Identity providers: a button for each, and the return from one (its one-time code traded
// for the session, or its refusal shown).
async function showProviders() {
  const list = await demo.baton.identityProviders().catch(() => []);
  $("providers").replaceChildren(
    ...list.map((p) => {
      const b = document.createElement("button");
      b.type = "button";
      b.id = `btn-idp-${p.name}`;
      b.textContent = `Sign in with ${p.display_name}`;
      // The provider returns to the server's own address (its redirect URI): at localhost
      // (where passkeys work) the button opens the page at 127.0.0.1 instead.
      if (location.hostname === "localhost") {
        b.textContent += " (at 127.0.0.1)";
        b.addEventListener("click", () => location.assign(`${location.protocol}//127.0.0.1:${location.port}${location.pathname}`));
      } else b.addEventListener("click", () => demo.baton.signInWith(p.name, { redirectTo: location.origin + location.pathname }));
      return b;
    }),
  );
  $("providers").hidden = !list.length;
}

async function followProvider() {
  try {
    const r = await demo.baton.handleRedirect({ rememberMe: $("remember").checked });
    if (r && !r.linked) signedIn(r);
  } catch (e) {
    $("auth-error").textContent = describe(e);
  }
}

start(prefs.transport || "body")
  .then(() => Promise.all([followLink(), followProvider(), showProviders()]))
  .catch((e) => {
    document.body.dataset.state = "error";
    $("landing").hidden = false;
    $("auth-error").textContent = describe(e);
  });
setInterval(tick, 250);
