// The page around the photographs: the API key (sessionStorage, this tab only), the alert and
// status lines, and the grading service's state in the header. Loaded before app.js.
"use strict";

(() => {
  const DRG = (window.DRG = window.DRG || {});
  const KEY_STORAGE = "drg.apiKey";
  const byId = (id) => document.getElementById(id);

  // ---------------------------------------------------------------- API key (session only)

  function storedKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || "";
    } catch {
      return "";
    }
  }

  function storeKey(value) {
    try {
      if (value) sessionStorage.setItem(KEY_STORAGE, value);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // Storage refused (private mode): the key then lives in the field only.
    }
  }

  const currentKey = () => byId("api-key").value.trim() || storedKey();

  function showAuth(hint) {
    byId("auth").hidden = false;
    if (hint) byId("auth-hint").textContent = hint;
  }

  // ---------------------------------------------------------------- messages

  function showAlert(text) {
    const alert = byId("alert");
    alert.textContent = text;
    alert.hidden = false;
  }

  function hideAlert() {
    byId("alert").hidden = true;
    byId("alert").textContent = "";
  }

  const setStatus = (text) => {
    byId("status").textContent = text;
  };

  function retryText(response) {
    const seconds = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    return Number.isFinite(seconds) && seconds > 0
      ? ` Try again in ${seconds} s.`
      : " Try again in a moment.";
  }

  // ---------------------------------------------------------------- service status

  async function refreshService() {
    const element = byId("service");
    try {
      const response = await fetch("/readyz", { cache: "no-store" });
      const body = await response.json().catch(() => null);
      if (response.ok && body && body.model) {
        element.dataset.state = "ready";
        element.title = "";
        element.textContent = `Ready · model ${body.model.name} v${body.model.version}`;
      } else {
        element.dataset.state = "down";
        // /readyz says "<code>: <technical detail>": a sentence for the clinician, the detail
        // for IT in the tooltip.
        const reason = body && body.error ? String(body.error.message) : `HTTP ${response.status}`;
        const friendly = DRG.REQUEST_ERRORS[reason.split(":", 1)[0]];
        element.textContent = `Grading service not ready${friendly ? `: ${friendly}` : ""}`;
        element.title = reason;
      }
    } catch {
      element.dataset.state = "down";
      element.title = "";
      element.textContent = "Grading gateway unreachable";
    }
  }

  DRG.shell = {
    storedKey,
    storeKey,
    currentKey,
    showAuth,
    showAlert,
    hideAlert,
    setStatus,
    retryText,
    refreshService,
  };
})();
