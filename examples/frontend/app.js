// The sign-in page. Plain JavaScript, no build step and no dependencies.
"use strict";

// Both tokens live in these variables only: never in localStorage,
// sessionStorage or a cookie, so they are gone with the page (reload = log out).
let accessToken = null;
let refreshToken = null;
let sessionBase = null; // the API that issued them
let refreshTimer = null;
let refreshInFlight = null; // one refresh at a time: every caller waits for the same one

// A failed scheduled refresh (server down or busy) is tried again this much later.
const REFRESH_RETRY_SECONDS = 30;

const SESSION_ENDED = "Your session has ended: please log in again.";

class SessionEnded extends Error {
  constructor() {
    super(SESSION_ENDED);
  }
}

const apiInput = $("api");
const loginForm = $("login-form");
const emailInput = $("email");
const passwordInput = $("password");
const loginButton = $("login");
const forgotToggle = $("forgot-toggle");
const forgotForm = $("forgot-form");
const forgotEmail = $("forgot-email");
const forgotButton = $("forgot-send");
const signedOut = $("signed-out");
const profile = $("profile");

// `?api=http://127.0.0.1:8001` points the page at another server.
apiInput.value = initialApiBase();

function apiBase() {
  return normalizeBase(apiInput.value);
}

// Refresh a minute before the access token expires, or halfway through a
// lifetime under two minutes.
function refreshDelaySeconds(expiresIn) {
  return Math.max(expiresIn - 60, expiresIn / 2);
}

// POST /auth/token takes a form, not JSON (RFC 6749).
async function requestTokens(base, form) {
  const response = await fetch(`${base}/auth/token`, {
    method: "POST",
    body: form, // sent as application/x-www-form-urlencoded
  });
  if (!response.ok) {
    throw await apiError(response);
  }
  return response.json();
}

function keepTokens(base, tokens) {
  sessionBase = base;
  accessToken = tokens.access_token;
  refreshToken = tokens.refresh_token;
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(scheduledRefresh, refreshDelaySeconds(tokens.expires_in) * 1000);
}

function forgetTokens() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  accessToken = null;
  refreshToken = null;
  sessionBase = null;
}

// As in the README ("From a frontend"): a form body, the email in `username`.
async function logIn(base, email, password) {
  const form = new URLSearchParams();
  form.append("username", email); // the email goes in `username`
  form.append("password", password);
  keepTokens(base, await requestTokens(base, form));
}

// Each refresh token works once: the answer's new pair replaces both tokens.
function refreshTokens() {
  refreshInFlight ??= rotateTokens().finally(() => {
    refreshInFlight = null;
  });
  return refreshInFlight;
}

async function rotateTokens() {
  const base = sessionBase;
  const presented = refreshToken;
  const form = new URLSearchParams();
  form.append("grant_type", "refresh_token");
  form.append("refresh_token", presented);
  let tokens;
  try {
    tokens = await requestTokens(base, form);
  } catch (error) {
    if (error instanceof ApiError && error.status === 400) {
      // invalid_grant: the session has ended (logout elsewhere, password reset,
      // expiry); unless this page has logged out meanwhile, say so.
      if (refreshToken === presented) {
        endSession(SESSION_ENDED);
      }
      throw new SessionEnded();
    }
    throw error; // unreachable or busy (503): the tokens are kept for another try
  }
  if (refreshToken !== presented) {
    throw new SessionEnded(); // logged out meanwhile: the new pair is not kept
  }
  keepTokens(base, tokens);
}

async function scheduledRefresh() {
  refreshTimer = null;
  try {
    await refreshTokens();
    showError("");
  } catch (error) {
    if (!(error instanceof SessionEnded) && refreshToken) {
      showError(`Could not refresh the session: ${failureMessage(error, sessionBase)}`);
      refreshTimer = setTimeout(scheduledRefresh, REFRESH_RETRY_SECONDS * 1000);
    }
  }
}

// A call with the access token; on 401 it refreshes once and retries.
async function apiFetch(path, init = {}) {
  const base = sessionBase;
  const send = (token) =>
    fetch(`${base}${path}`, {
      ...init,
      headers: { ...init.headers, Authorization: `Bearer ${token}` },
    });
  const sent = accessToken;
  const response = await send(sent);
  if (response.status !== 401) {
    return response;
  }
  if (accessToken === sent) {
    await refreshTokens(); // unless another call has refreshed meanwhile
  }
  if (!accessToken) {
    throw new SessionEnded();
  }
  const retried = await send(accessToken);
  if (retried.status === 401) {
    endSession(SESSION_ENDED);
    throw new SessionEnded();
  }
  return retried;
}

async function loadProfile() {
  const response = await apiFetch("/users/me");
  if (!response.ok) {
    throw await apiError(response);
  }
  showProfile(await response.json());
}

function showProfile(me) {
  $("profile-name").textContent = me.name;
  $("profile-email").textContent = me.email;
  $("profile-verified").textContent = me.email_verified ? "yes" : "no";
  signedOut.hidden = true;
  profile.hidden = false;
}

function showSignedOut() {
  $("profile-name").textContent = "";
  $("profile-email").textContent = "";
  $("profile-verified").textContent = "";
  passwordInput.value = "";
  profile.hidden = true;
  signedOut.hidden = false;
}

// The session is over on the server: forget it here and say so.
function endSession(message) {
  forgetTokens();
  showSignedOut();
  showNotice("");
  showError(message);
}

// Ends the session on the server (POST /auth/logout), then here; here even
// when the server cannot be reached.
async function logOut() {
  $("logout").disabled = true;
  try {
    await apiFetch("/auth/logout", { method: "POST" });
  } catch {
    // Unreachable, or the session had already ended: logged out here all the same.
  } finally {
    forgetTokens();
    showSignedOut();
    showNotice("");
    showError("");
    $("logout").disabled = false;
    emailInput.focus();
  }
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  showNotice("");
  if (!apiInput.reportValidity() || !loginForm.reportValidity()) {
    return;
  }
  const base = apiBase();
  rememberApiBase(base);
  loginButton.disabled = true;
  try {
    await logIn(base, emailInput.value.trim(), passwordInput.value);
    passwordInput.value = "";
    await loadProfile();
    $("logout").focus();
  } catch (error) {
    forgetTokens();
    showError(failureMessage(error, base));
  } finally {
    loginButton.disabled = false;
  }
});

forgotToggle.addEventListener("click", () => {
  forgotForm.hidden = !forgotForm.hidden;
  forgotToggle.setAttribute("aria-expanded", String(!forgotForm.hidden));
  if (!forgotForm.hidden) {
    forgotEmail.value ||= emailInput.value.trim();
    forgotEmail.focus();
  }
});

// The answer is the same for every address, known or not (no enumeration).
forgotForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  showNotice("");
  if (!apiInput.reportValidity() || !forgotForm.reportValidity()) {
    return;
  }
  const base = apiBase();
  rememberApiBase(base);
  forgotButton.disabled = true;
  try {
    const response = await postJson(base, "/auth/password/forgot", {
      email: forgotEmail.value.trim(),
    });
    if (!response.ok) {
      throw await apiError(response);
    }
    const { detail } = await response.json();
    showNotice(detail);
  } catch (error) {
    showError(failureMessage(error, base));
  } finally {
    forgotButton.disabled = false;
  }
});

$("reload").addEventListener("click", async () => {
  const base = sessionBase;
  showError("");
  try {
    await loadProfile();
  } catch (error) {
    showError(failureMessage(error, base));
  }
});

$("logout").addEventListener("click", logOut);
