// Shared progressive enhancements; every page also works without JavaScript.
"use strict";

window.Lainaamo = {
  csrf() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  },
  // POST (or another method) with the session's CSRF token; resolves to the parsed JSON.
  async send(url, body, method = "POST", contentType = "application/json") {
    const response = await fetch(url, {
      method,
      headers: { "X-CSRF-Token": this.csrf(), "Content-Type": contentType, Accept: "application/json" },
      body: contentType === "application/json" ? JSON.stringify(body) : body,
      credentials: "same-origin",
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const message = (data.error && data.error.message) || response.statusText;
      throw Object.assign(new Error(message), { status: response.status, data });
    }
    return data;
  },
};

// <form data-confirm="Question?">: ask before submitting.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
