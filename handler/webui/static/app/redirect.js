// The redirect URI of the page's MSAL client: Entra sends the
// authorization code here, and MSAL's redirect bridge hands it to the page
// (a redirect returns to the page; a silent renewal's iframe or a popup
// passes it to the window that started it).
globalThis.msalRedirectBridge.broadcastResponseToMainFrame().catch((err) => {
  document.body.textContent = "Sign-in could not be completed: " + (err && err.message ? err.message : String(err));
});
