// The login form: where to go after logging in, and why the last attempt failed.
const q = new URLSearchParams(location.search);
const next = q.get("next");
if (next && next.startsWith("/ui/")) document.getElementById("next").value = next;
const messages = {
  token: "That token is not valid here (use the viewer or the admin token).",
  code: "This login link was already used or has expired; log in with the token, or restart the run for a new link.",
};
const err = q.get("error");
if (err) {
  const p = document.getElementById("login-error");
  p.textContent = messages[err] || "Log in failed.";
  p.hidden = false;
}
