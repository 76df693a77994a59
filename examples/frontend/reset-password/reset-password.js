// The page a password reset link opens: {FRONTEND_URL}/reset-password#token=...
"use strict";

// In memory only, like the sign-in page's tokens.
let linkToken = takeLinkToken();

const apiInput = $("api");
const resetForm = $("reset-form");
const newPassword = $("new-password");
const confirmPassword = $("confirm-password");
const resetButton = $("reset");

apiInput.value = initialApiBase();

if (linkToken) {
  resetForm.hidden = false;
  newPassword.focus();
} else {
  showError("This link has no token: open the link from the email again, or ask for a new one.");
}

resetForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError("");
  showNotice("");
  if (!apiInput.reportValidity() || !resetForm.reportValidity()) {
    return;
  }
  if (newPassword.value !== confirmPassword.value) {
    showError("The two passwords differ.");
    return;
  }
  const base = normalizeBase(apiInput.value);
  rememberApiBase(base);
  resetButton.disabled = true;
  try {
    const response = await postJson(base, "/auth/password/reset", {
      token: linkToken,
      new_password: newPassword.value,
    });
    if (!response.ok) {
      // 400: the token is invalid or expired, or the password breaks a rule.
      throw await apiError(response);
    }
    linkToken = null; // spent
    newPassword.value = "";
    confirmPassword.value = "";
    resetForm.hidden = true;
    showNotice(
      "Your password has been changed and every session signed out: log in with the new one.",
    );
  } catch (error) {
    showError(failureMessage(error, base));
  } finally {
    resetButton.disabled = false;
  }
});
