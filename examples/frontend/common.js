// Shared by every page: the API base URL, JSON requests and error messages.
// Plain JavaScript, no build step and no dependencies; loaded before each page's script.
"use strict";

const DEFAULT_API_BASE = "http://localhost:8000";
// The API base URL (not a secret) is remembered for this tab, so the reset and
// verification links, which carry no `?api=`, reach the API the tab last used.
const API_BASE_KEY = "apiBase";

const $ = (id) => document.getElementById(id);

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function normalizeBase(value) {
  return value.trim().replace(/\/+$/, "");
}

// `?api=` first, then what this tab used last, then the default.
function initialApiBase() {
  const fromQuery = new URLSearchParams(window.location.search).get("api");
  if (fromQuery) {
    rememberApiBase(fromQuery);
    return normalizeBase(fromQuery);
  }
  try {
    return sessionStorage.getItem(API_BASE_KEY) || DEFAULT_API_BASE;
  } catch {
    return DEFAULT_API_BASE; // storage disabled: the default will do
  }
}

function rememberApiBase(base) {
  try {
    sessionStorage.setItem(API_BASE_KEY, normalizeBase(base));
  } catch {
    // Storage disabled: the links fall back to the default.
  }
}

// The token of a mailed link: it sits after `#` so that it never reaches a
// server. Read once, then removed from the address bar and the history.
// A token in the query string is ignored: the API never issues such links.
function takeLinkToken() {
  const token = new URLSearchParams(window.location.hash.slice(1)).get("token");
  if (window.location.hash) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
  }
  return token || null;
}

function postJson(base, path, body) {
  return fetch(`${base}${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
}

// The API answers `{"detail"}`, or `{"error", "error_description"}` at /auth/token.
async function apiError(response) {
  const body = await response.json().catch(() => ({}));
  let message = `HTTP ${response.status}`;
  if (typeof body.error_description === "string") {
    message = body.error_description;
  } else if (typeof body.detail === "string") {
    message = body.detail;
  } else if (Array.isArray(body.detail) && typeof body.detail[0]?.msg === "string") {
    message = body.detail[0].msg; // 422: the first problem is enough here
  }
  const retryAfter = response.headers.get("Retry-After");
  if (response.status === 429 && retryAfter) {
    message += ` (try again in ${retryAfter} seconds)`;
  }
  return new ApiError(message, response.status);
}

// fetch() rejects with a TypeError when the server is down or CORS refuses this origin.
function failureMessage(error, base) {
  if (error instanceof TypeError) {
    return (
      `Could not reach ${base}: is it running, with this page's origin ` +
      `(${window.location.origin}) in CORS_ORIGINS?`
    );
  }
  return error.message;
}

function showError(message) {
  $("error").textContent = message;
}

function showNotice(message) {
  $("notice").textContent = message;
}
