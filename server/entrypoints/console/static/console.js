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

// <form data-draft="key">: what is typed or ticked is kept in this tab (sessionStorage) until
// <form data-draft-clear="key"> is sent, so leaving a wizard and coming back keeps it. A draft
// is restored only into a form that the server sent empty: what the server carries wins.
(() => {
  const store = window.sessionStorage;
  const fields = (form) => [...form.elements].filter((el) => el.name && el.type !== "hidden");
  const empty = (form) => fields(form).every((el) => (el.type === "checkbox" ? !el.checked : !el.value));
  for (const form of document.querySelectorAll("form[data-draft]")) {
    const key = "lainaamo-draft:" + form.dataset.draft;
    const saved = JSON.parse(store.getItem(key) || "null");
    if (saved && empty(form)) {
      for (const el of fields(form)) {
        if (el.type === "checkbox") el.checked = (saved.checked || []).includes(el.name + "=" + el.value);
        else if (el.name in (saved.values || {})) el.value = saved.values[el.name];
      }
    }
    const save = () => {
      const checked = [], values = {};
      for (const el of fields(form)) {
        if (el.type === "checkbox") { if (el.checked) checked.push(el.name + "=" + el.value); }
        else values[el.name] = el.value;
      }
      store.setItem(key, JSON.stringify({ checked, values }));
    };
    form.addEventListener("input", save);
    form.addEventListener("change", save);
  }
  for (const form of document.querySelectorAll("form[data-draft-clear]")) {
    form.addEventListener("submit", () => store.removeItem("lainaamo-draft:" + form.dataset.draftClear));
  }
})();

// On a phone a wide table scrolls inside its own box (console.css). A box that scrolls must be
// reachable by keyboard (WCAG 2.1.1, axe's scrollable-region-focusable): while a table overflows
// it takes a tab stop, named by its caption or its section's heading; when it fits again it gives
// the tab stop back. Boxes written with tabindex in the page (.table-scroll) are left as they are.
(() => {
  const mark = () => {
    for (const table of document.querySelectorAll("table")) {
      if (table.parentElement.closest(".table-scroll")) continue;
      const scrolls = table.scrollWidth > table.clientWidth + 1;
      if (scrolls && !table.hasAttribute("tabindex")) {
        table.setAttribute("tabindex", "0");
        table.dataset.scrollStop = "1";
        if (!table.caption && !table.hasAttribute("aria-label") && !table.hasAttribute("aria-labelledby")) {
          const section = table.closest("section[aria-labelledby]");
          if (section) table.setAttribute("aria-labelledby", section.getAttribute("aria-labelledby"));
        }
      } else if (!scrolls && table.dataset.scrollStop) {
        table.removeAttribute("tabindex");
        delete table.dataset.scrollStop;
      }
    }
  };
  mark();
  window.addEventListener("resize", mark);
})();
