// The page a verification link opens: {FRONTEND_URL}/verify-email#token=...
// It confirms at once (opening the link is the point); the button tries again
// after a failure, e.g. with another API base URL.
"use strict";

// In memory only, like the sign-in page's tokens.
let linkToken = takeLinkToken();

const apiInput = $("api");
const verifyForm = $("verify-form");
const verifyButton = $("verify");

apiInput.value = initialApiBase();

verifyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  showNotice("");
  if (!apiInput.reportValidity()) {
    return;
  }
  const base = normalizeBase(apiInput.value);
  rememberApiBase(base);
  verifyButton.disabled = true;
  try {
    const response = await postJson(base, "/auth/verify-email", { token: linkToken });
    if (!response.ok) {
      throw await apiError(response); // 400: invalid or expired token
    }
    linkToken = null;
    verifyForm.hidden = true;
    showNotice("Your email address is confirmed.");
  } catch (error) {
    showError(failureMessage(error, base));
  } finally {
    verifyButton.disabled = false;
  }
});

if (linkToken) {
  verifyForm.hidden = false;
  verifyForm.requestSubmit();
} else {
  showError("This link has no token: open the link from the email again, or ask for a new one.");
}
