// Plain JavaScript, no build step and no dependencies.
"use strict";

// The access token lives in this variable only: never in localStorage,
// sessionStorage or a cookie, so it is gone with the page (reload = log out).
let accessToken = null;

const $ = (id) => document.getElementById(id);
const loginForm = $("login-form");
const apiInput = $("api");
const emailInput = $("email");
const passwordInput = $("password");
const loginButton = $("login");
const errorBox = $("error");
const profile = $("profile");

// `?api=http://127.0.0.1:8001` points the page at another server.
apiInput.value =
  new URLSearchParams(window.location.search).get("api") || "http://localhost:8000";

function apiBase() {
  return apiInput.value.trim().replace(/\/+$/, "");
}

// As in the README ("From a frontend"): a form body, the email in `username`.
async function logIn(base, email, password) {
  const form = new URLSearchParams();
  form.append("username", email); // the email goes in `username`
  form.append("password", password);

  const response = await fetch(`${base}/auth/token`, {
    method: "POST",
    body: form, // sent as application/x-www-form-urlencoded
  });
  if (!response.ok) {
    const { error_description } = await response.json().catch(() => ({}));
    throw new Error(error_description || `Login failed (HTTP ${response.status})`);
  }
  const { access_token } = await response.json();
  return access_token;
}

async function fetchMe(base, token) {
  const response = await fetch(`${base}/users/me`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  if (!response.ok) {
    const { detail } = await response.json().catch(() => ({}));
    throw new Error(typeof detail === "string" ? detail : `HTTP ${response.status}`);
  }
  return response.json();
}

function showError(message) {
  errorBox.textContent = message;
}

function showProfile(me) {
  $("profile-name").textContent = me.name;
  $("profile-email").textContent = me.email;
  loginForm.hidden = true;
  profile.hidden = false;
  $("logout").focus();
}

function logOut() {
  accessToken = null;
  $("profile-name").textContent = "";
  $("profile-email").textContent = "";
  passwordInput.value = "";
  profile.hidden = true;
  loginForm.hidden = false;
  showError("");
  emailInput.focus();
}

loginForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  if (!loginForm.reportValidity()) {
    return;
  }
  const base = apiBase();
  loginButton.disabled = true;
  try {
    accessToken = await logIn(base, emailInput.value.trim(), passwordInput.value);
    passwordInput.value = "";
    showProfile(await fetchMe(base, accessToken));
  } catch (error) {
    accessToken = null;
    // fetch() rejects with a TypeError when the server is down or CORS refuses this origin.
    showError(
      error instanceof TypeError
        ? `Could not reach ${base}: is it running, with this page's origin ` +
            `(${window.location.origin}) in CORS_ORIGINS?`
        : error.message,
    );
  } finally {
    loginButton.disabled = false;
  }
});

$("logout").addEventListener("click", logOut);
