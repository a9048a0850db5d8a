// Fleet overview: live cells over Server-Sent Events (polling as fallback), choosing devices
// for a bulk action, the bulk command's progress; CSV import with a dry run, a progress bar
// and chunked commits. The pages work without this file.
"use strict";

(() => {
  const format = (template, values) =>
    template.replace(/%\((\w+)\)s/g, (_, key) => (key in values ? String(values[key]) : ""));
  const number = (n) => new Intl.NumberFormat(document.documentElement.lang || "fi").format(n);

  // --- live updates of the overview -----------------------------------------------------

  function setCell(td, cell) {
    const [text, tone] = cell;
    const span = td.querySelector("span") || td.appendChild(document.createElement("span"));
    if (span.textContent === text && (span.className || "") === (tone ? `badge ${tone}` : "")) {
      return false;
    }
    span.textContent = text;
    span.className = tone ? `badge ${tone}` : "";
    return true;
  }

  function startLive(table, summary) {
    const rows = new Map();
    table.querySelectorAll("tr[data-device]").forEach((tr) => rows.set(tr.dataset.device, tr));
    if (!rows.size) return;
    const ids = encodeURIComponent([...rows.keys()].join(","));
    const { liveUrl, snapshotUrl, msgUpdated, msgChanged, msgPaused } = summary.dataset;
    let polling = null;
    let failures = 0;

    const apply = (data) => {
      let changed = 0;
      for (const [id, cells] of Object.entries(data.devices || {})) {
        const tr = rows.get(id);
        if (!tr) continue;
        let rowChanged = false;
        for (const [field, cell] of Object.entries(cells)) {
          const td = tr.querySelector(`td[data-field="${field}"]`);
          if (td && setCell(td, cell)) rowChanged = true;
        }
        if (rowChanged) changed += 1;
      }
      // Announce only real changes: a status line that speaks every 2 s would drown the page.
      if (changed) {
        summary.textContent = format(msgChanged, { time: data.at, count: number(changed) });
      } else if (!summary.textContent) {
        summary.textContent = format(msgUpdated, { time: data.at });
      }
    };

    const poll = async () => {
      try {
        const response = await fetch(`${snapshotUrl}?ids=${ids}`, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (response.status === 401 || response.status === 403) throw new Error("signed out");
        if (!response.ok) throw new Error(response.statusText);
        failures = 0;
        apply(await response.json());
      } catch (error) {
        failures += 1;
        if (failures >= 3 || error.message === "signed out") {
          clearInterval(polling);
          summary.textContent = msgPaused;
        }
      }
    };

    const fallBackToPolling = () => {
      if (polling === null) polling = setInterval(poll, 5000);
    };

    if (!("EventSource" in window)) {
      fallBackToPolling();
      return;
    }
    let opened = false;
    const source = new EventSource(`${liveUrl}?ids=${ids}`);
    source.addEventListener("open", () => { opened = true; });
    source.addEventListener("devices", (event) => apply(JSON.parse(event.data)));
    source.addEventListener("signed_out", () => {
      source.close();
      summary.textContent = msgPaused;
    });
    source.addEventListener("error", () => {
      // Ends of a bounded stream reconnect by themselves; a refused stream (503, too many
      // streams) or a connection that never opened switches to polling.
      if (!opened || source.readyState === EventSource.CLOSED) {
        source.close();
        fallBackToPolling();
      }
      opened = false;
    });
  }

  // --- choosing devices for a bulk action ---------------------------------------------------

  // Without this, "all on this page" is a box of its own that the server reads; with it, the
  // box ticks every row's box too, and shows how many are chosen.
  function startSelection(form) {
    const all = form.querySelector("#f-page_all");
    const boxes = [...form.querySelectorAll('input[name="device"]')];
    const count = form.querySelector("#bulk-count");
    const show = () => {
      const n = boxes.filter((b) => b.checked).length;
      all.checked = n === boxes.length && n > 0;
      all.indeterminate = n > 0 && n < boxes.length;
      count.textContent = n ? format(count.dataset.msgCount, { count: number(n) }) : "";
    };
    all.addEventListener("change", () => {
      boxes.forEach((b) => { b.checked = all.checked; });
      show();
    });
    boxes.forEach((b) => b.addEventListener("change", show));
    // The row boxes now say everything: "all" only repeats them.
    form.addEventListener("submit", () => { all.value = "0"; });
    show();
  }

  // --- progress of a bulk command -------------------------------------------------------------

  function startProgress(section) {
    const bar = section.querySelector("#bulk-bar");
    const status = section.querySelector("#bulk-status");
    let timer = null;
    const poll = async () => {
      try {
        const response = await fetch(section.dataset.url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
        if (!response.ok) throw new Error(response.statusText);
        const data = await response.json();
        bar.max = data.total;
        bar.value = data.finished;
        status.textContent = format(section.dataset.msgProgress, {
          finished: number(data.finished), total: number(data.total),
        });
        for (const [state, n] of Object.entries(data.by_state || {})) {
          const cell = section.querySelector(`td[data-state="${state}"]`);
          if (cell) cell.textContent = number(n);
        }
        if (data.finished >= data.total) clearInterval(timer);
      } catch (error) {
        clearInterval(timer); // the refresh link still works
      }
    };
    if (Number(bar.value) < Number(bar.max)) timer = setInterval(poll, 2000);
  }

  // --- CSV import ---------------------------------------------------------------------------

  // Records of a CSV (quoted fields may hold line breaks); empty lines are skipped, as the
  // server's reader does, so that row numbers match.
  function records(text) {
    const out = [];
    let start = 0;
    let quoted = false;
    for (let i = 0; i <= text.length; i += 1) {
      const c = text[i];
      if (c === '"') quoted = !quoted;
      else if ((c === "\n" || i === text.length) && !quoted) {
        const line = text.slice(start, i).replace(/\r$/, "");
        if (line !== "") out.push(line);
        start = i + 1;
      }
    }
    return out;
  }

  function errorTable(form, errors, container) {
    const d = form.dataset;
    const table = document.createElement("table");
    table.createCaption().textContent = d.labelCaption;
    const head = table.createTHead().insertRow();
    for (const label of [d.labelRow, d.labelColumn, d.labelProblem]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = label;
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const e of errors) {
      const tr = body.insertRow();
      tr.insertCell().textContent = e.row === null || e.row === undefined ? "–" : number(e.row);
      tr.cells[0].className = "num";
      tr.insertCell().textContent = e.field || "–";
      tr.insertCell().textContent = e.message || "";
    }
    container.appendChild(table);
  }

  async function runImport(form, file) {
    const d = form.dataset;
    const section = document.getElementById("import-progress");
    const bar = document.getElementById("import-bar");
    const status = document.getElementById("import-status");
    const result = document.getElementById("import-result");
    const button = form.querySelector('button[type="submit"]');
    section.hidden = false;
    result.textContent = "";
    button.disabled = true;
    bar.removeAttribute("value");
    status.textContent = d.msgReading;
    const fail = (message, errors) => {
      status.textContent = message;
      if (errors && errors.length) errorTable(form, errors, result);
    };
    try {
      // UTF-8 (with or without a byte-order mark), else an older Excel's Windows-1252.
      const bytes = await file.arrayBuffer();
      let text;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch (error) {
        text = new TextDecoder("windows-1252").decode(bytes);
      }
      const lines = records(text.replace(/^\ufeff/, ""));
      if (lines.length < 2) {
        fail(d.msgEmpty);
        return;
      }
      const total = lines.length - 1;
      status.textContent = format(total === 1 ? d.msgCheckingOne : d.msgChecking, { total: number(total) });
      let check;
      try {
        check = await window.Lainaamo.send(d.validateUrl, text, "POST", "text/csv");
      } catch (error) {
        const details = (error.data && error.data.error && error.data.error.details) || [];
        fail(format(d.msgFailed, { reason: error.message }), details);
        return;
      }
      if (!check.ok) {
        const invalid = check.errors.length === 1 ? d.msgInvalidOne : d.msgInvalid;
        fail(format(invalid, { count: number(check.errors.length) }), check.errors);
        return;
      }
      const size = Number(d.chunkRows) || 500;
      bar.max = total;
      bar.value = 0;
      let done = 0;
      for (let first = 1; first < lines.length; first += size) {
        const chunk = [lines[0], ...lines.slice(first, first + size)].join("\n");
        const last = Math.min(first + size, lines.length) - 1;
        try {
          const url = `${d.chunkUrl}?first_row=${first + 1}`;
          const answer = await window.Lainaamo.send(url, chunk, "POST", "text/csv");
          done += answer.created;
        } catch (error) {
          const details = (error.data && error.data.error && error.data.error.details) || [];
          fail(
            `${error.message} ${format(d.msgChunkFailed, {
              first: number(first + 1), last: number(last + 1), done: number(done),
            })}`,
            details,
          );
          return;
        }
        bar.value = done;
        status.textContent = format(d.msgProgress, { done: number(done), total: number(total) });
      }
      status.textContent = format(done === 1 ? d.msgDoneOne : d.msgDone, { total: number(done) });
      const link = document.createElement("a");
      link.href = d.listUrl;
      link.textContent = d.labelList;
      result.appendChild(link);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const table = document.getElementById("fleet-table");
    const summary = document.getElementById("fleet-live");
    if (table && summary) startLive(table, summary);
    const selection = document.getElementById("bulk-select");
    if (selection) startSelection(selection);
    const progress = document.getElementById("bulk-progress");
    if (progress && window.fetch) startProgress(progress);

    const form = document.getElementById("import-form");
    if (form && window.fetch && window.File && File.prototype.text) {
      form.addEventListener("submit", (event) => {
        const file = form.elements.file.files[0];
        if (!file) return;
        event.preventDefault();
        runImport(form, file);
      });
    }
  });
})();
