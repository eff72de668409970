// The operations console (docs/operations.md "Console"). It polls the gateway about once a
// second: GET /api/v1/console (binds, open dialogs, the rolling series), the selected bind's
// trace (only the PDUs after the last one shown), the dialog records and the fault rules when
// those routes exist. Every call carries the admin token, kept in sessionStorage (this tab
// only). Every text is set with textContent and the charts are SVG drawn here: nothing is
// fetched from anywhere but the gateway.
"use strict";

(function () {
  const POLL_MS = 1000;
  const MINUTES = 5;
  const RECORDS = 20;
  const TRACE_ROWS = 256; // as many as the gateway keeps per bind
  const SVG = "http://www.w3.org/2000/svg";
  const store = window.sessionStorage;

  const ui = {
    token: store.getItem("console.token"),
    paused: false,
    bind: null, // the traced bind's id
    follow: true, // trace each new bind as it appears
    newest: 0, // the highest bind id seen
    traceAfter: 0,
    records: true, // GET /api/v1/dialogs exists (a 404 hides the panel)
    faults: true,
    timer: null,
  };

  const $ = (id) => document.getElementById(id);

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function row(cells, attrs) {
    const tr = document.createElement("tr");
    for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
    for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
    return tr;
  }

  function td(text, cls) {
    return el("td", text, cls);
  }

  function replaceRows(tbody, rows, empty) {
    tbody.replaceChildren(...rows);
    if (!rows.length && empty) {
      const tr = row([]);
      const cell = el("td", empty, "empty");
      cell.colSpan = tbody.parentElement.querySelectorAll("thead th").length;
      tr.appendChild(cell);
      tbody.appendChild(tr);
    }
  }

  class Unauthorized extends Error {}

  async function api(path) {
    const response = await fetch(path, {
      headers: { Authorization: "Bearer " + ui.token, Accept: "application/json" },
      cache: "no-store",
      credentials: "same-origin",
    });
    if (response.status === 401) throw new Unauthorized();
    if (response.status === 404) return null;
    const data = await response.json();
    if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
    return data;
  }

  // -- sign-in ------------------------------------------------------------------------------

  function showToken(message) {
    ui.token = null;
    store.removeItem("console.token");
    $("panels").hidden = true;
    $("sign-out").hidden = true;
    $("token-form").hidden = false;
    $("token-error").textContent = message || "";
    $("status").textContent = "signed out";
    $("token").focus();
  }

  function signedIn(token) {
    ui.token = token;
    store.setItem("console.token", token);
    $("token-form").hidden = true;
    $("panels").hidden = false;
    $("sign-out").hidden = false;
    poll();
  }

  // -- panels -------------------------------------------------------------------------------

  function age(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    return seconds < 60 ? seconds + " s" : Math.floor(seconds / 60) + " min " + (seconds % 60) + " s";
  }

  function renderBinds(data) {
    const newest = Math.max(0, ...data.binds.map((b) => b.id));
    if (newest > ui.newest) {
      ui.newest = newest;
      if (ui.follow) selectBind(newest);
    }
    const rows = data.binds.map((b) => {
      const w = b.window;
      const full = w.used >= w.size;
      const tr = row(
        [
          td(b.id),
          td(b.system_id === null ? "(not bound)" : b.system_id),
          td(b.bind_type || "—"),
          td(b.peer),
          td(w.used + "/" + w.size + (w.queued ? " +" + w.queued + " queued" : ""), full ? "warn" : ""),
          td(b.pdus_per_s.toFixed(1)),
          td(b.pdus.received + " / " + b.pdus.sent),
          td(b.capture ? b.capture.file : "—"),
        ],
        {
          "data-testid": "bind",
          "data-bind": b.id,
          "data-system-id": b.system_id || "",
          "data-bind-type": b.bind_type || "",
        }
      );
      tr.classList.add("pick");
      if (ui.bind === b.id) tr.classList.add("selected");
      tr.addEventListener("click", () => pickBind(b.id));
      return tr;
    });
    for (const c of data.closed_binds) {
      const tr = row(
        [td(c.id), td(c.system_id || "(not bound)"), td("closed"), td(c.peer), td("—"), td("—"), td(c.pdus + " traced"), td("—")],
        { "data-testid": "closed-bind", "data-bind": c.id }
      );
      tr.classList.add("pick", "closed");
      if (ui.bind === c.id) tr.classList.add("selected");
      tr.addEventListener("click", () => pickBind(c.id));
      rows.push(tr);
    }
    replaceRows($("binds-body"), rows, data.smpp ? "no SMPP connection" : "the SMPP server is not running");
    $("binds-count").textContent = data.binds.length + " open";
  }

  function renderDialogs(data) {
    const now = data.clock; // the gateway's clock, which may be simulated, as `started` is
    const rows = data.dialogs.shown.map((d) =>
      row(
        [td(d.msisdn), td(d.service_code), td(d.service), td(d.screen), td(d.page + "/" + d.pages), td(age(now - d.started))],
        { "data-testid": "dialog", "data-msisdn": d.msisdn, "data-session": d.session }
      )
    );
    replaceRows($("dialogs-body"), rows, "none open");
    const open = data.dialogs.open;
    $("dialogs-count").textContent = open > rows.length ? open + " open, newest " + rows.length + " shown" : open + " open";
  }

  // The records panel asks GET /api/v1/dialogs with the filter typed above it; a filter the
  // gateway refuses (400) is said beside it and the rest of the page goes on.
  async function pollRecords() {
    const query = new URLSearchParams({ limit: String(RECORDS) });
    const msisdn = $("filter-msisdn").value.trim();
    const cause = $("filter-cause").value.trim();
    if (msisdn) query.set("msisdn", msisdn);
    if (cause) query.set("cause", cause);
    let records;
    try {
      records = await api("/api/v1/dialogs?" + query);
    } catch (error) {
      if (error instanceof Unauthorized) throw error;
      $("records-error").textContent = error.message;
      replaceRows($("records-body"), [], "");
      return;
    }
    $("records-error").textContent = "";
    ui.records = records !== null;
    $("records-panel").hidden = !ui.records;
    const filtered = Boolean(msisdn || cause);
    if (records) renderRecords(records, filtered);
    $("records-count").textContent = records ? "the last " + records.dialogs.length + (filtered ? " matching" : "") : "";
  }

  function renderRecords(data, filtered) {
    const rows = data.dialogs.map((r) => {
      const cause = el("td", r.cause, "cause cause-" + r.cause);
      cause.setAttribute("data-testid", "cause");
      return row(
        [td(r.ended.replace("T", " ").replace("Z", "")), td(r.msisdn), td(r.code), td(r.route || "—"), td(r.via), td(r.steps), td(r.duration), cause, td(r.detail || "")],
        { "data-testid": "record", "data-session": r.session, "data-cause": r.cause, "data-msisdn": r.msisdn }
      );
    });
    replaceRows($("records-body"), rows, filtered ? "no record matches" : "no dialog has ended yet");
  }

  function renderFaults(data) {
    $("faults-seed").textContent = data.seed === undefined || data.seed === null ? "" : "seed " + data.seed;
    const rules = data.rules || [];
    const rows = rules.map((r) => {
      const params = {};
      for (const [k, v] of Object.entries(r)) {
        if (!["id", "kind", "match", "seen", "fired"].includes(k)) params[k] = v;
      }
      const match = Object.entries(r.match || {}).map(([k, v]) => k + "=" + v).join(" ") || "everything";
      const rest = Object.entries(params).map(([k, v]) => k + "=" + v).join(" ");
      return row([td(r.id), td(r.kind), td(match), td(rest), td(r.seen ?? "—"), td(r.fired ?? "—")], { "data-testid": "fault", "data-kind": r.kind });
    });
    replaceRows($("faults-body"), rows, "no fault rules: the network behaves");
  }

  // -- the trace ----------------------------------------------------------------------------

  // A bind picked by hand: the trace stays on it.
  function pickBind(id) {
    ui.follow = false;
    $("follow").checked = false;
    selectBind(id);
  }

  function selectBind(id) {
    if (ui.bind === id) return;
    ui.bind = id;
    ui.traceAfter = 0;
    $("trace-body").replaceChildren();
    for (const tr of document.querySelectorAll("#binds-body tr")) {
      tr.classList.toggle("selected", tr.getAttribute("data-bind") === String(id));
    }
    $("trace-of").textContent = "bind " + id + " (starting)";
    pollTrace().catch(failed);
  }

  function clock(epoch) {
    const d = new Date(epoch * 1000);
    return d.toISOString().slice(11, 23);
  }

  function fields(p) {
    const skip = new Set(["n", "at", "dir", "length", "command", "status", "sequence", "ussd_service_op", "its_session_info", "source_addr", "destination_addr", "text"]);
    const parts = [];
    if (p.text !== undefined) parts.push(JSON.stringify(p.text));
    for (const [k, v] of Object.entries(p)) if (!skip.has(k) && v !== "" && v !== null) parts.push(k + "=" + v);
    return parts.join("  ");
  }

  function traceRow(p) {
    // Vendor operations (0x80 and up, SMPP 3.4 §5.3.2.44) in hex, as docs/smpp.md writes them.
    const opValue = (v) => (v >= 0x80 ? "0x" + v.toString(16).toUpperCase() : String(v));
    const op = p.ussd_service_op ? opValue(p.ussd_service_op.value) + " " + p.ussd_service_op.name : "";
    const its = p.its_session_info
      ? "session " + p.its_session_info.session_number + ", seq " + p.its_session_info.sequence_number + (p.its_session_info.end_of_session ? ", end" : "")
      : "";
    const addresses = p.source_addr !== undefined ? (p.source_addr || "''") + " → " + (p.destination_addr || "''") : "";
    const status = td(p.status || "", p.status && p.status !== "ESME_ROK" ? "warn" : "");
    const tr = row(
      [td(p.n), td(clock(p.at)), td(p.dir === "in" ? "→ in" : "← out", "dir-" + p.dir), td(p.command, "command"), td(p.sequence ?? ""), status, td(op), td(its), td(addresses), td(fields(p), "fields")],
      { "data-testid": "pdu", "data-command": p.command, "data-dir": p.dir, "data-n": p.n }
    );
    if (p.error) tr.classList.add("bad");
    return tr;
  }

  async function pollTrace() {
    if (ui.bind === null) return;
    const id = ui.bind;
    const data = await api("/api/v1/console/binds/" + id + "/trace?after=" + ui.traceAfter);
    if (ui.bind !== id) return; // another bind was picked meanwhile
    if (data === null) {
      $("trace-of").textContent = "bind " + id + " is gone";
      ui.bind = null;
      return;
    }
    const body = $("trace-body");
    // Two polls may cross (a bind picked while the page polls): each PDU is shown once.
    const fresh = data.pdus.filter((p) => p.n > ui.traceAfter);
    for (const p of fresh) body.appendChild(traceRow(p));
    while (body.children.length > TRACE_ROWS) body.removeChild(body.firstChild);
    if (fresh.length) ui.traceAfter = fresh[fresh.length - 1].n;
    const who = (data.system_id || "not bound") + " " + data.peer;
    $("trace-of").textContent = "bind " + id + " (" + who + ")" + (data.open ? "" : ", closed") + ": " + data.count + " PDUs since tracing began, the last " + data.limit + " kept";
    $("trace-of").setAttribute("data-bind", id);
  }

  // -- charts -------------------------------------------------------------------------------

  function line(svg, points, cls) {
    const path = document.createElementNS(SVG, "polyline");
    path.setAttribute("points", points.map(([x, y]) => x.toFixed(1) + "," + y.toFixed(1)).join(" "));
    path.setAttribute("class", "line " + cls);
    path.setAttribute("data-points", String(points.length));
    svg.appendChild(path);
  }

  function label(svg, x, y, text, anchor) {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", x);
    t.setAttribute("y", y);
    t.setAttribute("class", "label");
    if (anchor) t.setAttribute("text-anchor", anchor);
    t.textContent = text;
    svg.appendChild(t);
  }

  function nice(max) {
    if (max <= 0) return 1;
    const step = Math.pow(10, Math.floor(Math.log10(max)));
    for (const m of [1, 2, 5, 10]) if (m * step >= max) return m * step;
    return 10 * step;
  }

  // The time the charts span: the history there is, rounded up to a whole minute (a gateway
  // started a moment ago gets a minute wide chart, not a line squeezed against the right).
  function span(samples, now) {
    const have = samples.length ? now - samples[0][0] : 0;
    return Math.min(MINUTES, Math.max(1, Math.ceil(have / 60))) * 60;
  }

  // One chart: x is the `seconds` ending now, y from 0 to a round maximum.
  function chart(svg, samples, now, seconds, series) {
    const W = 600, H = 160, L = 44, B = 18, T = 8;
    svg.replaceChildren();
    let max = 0;
    for (const s of series) for (const r of samples) max = Math.max(max, r[s.index]);
    const top = nice(max);
    const start = now - seconds;
    const x = (at) => L + ((at - start) / seconds) * (W - L - 4);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    for (const f of [0, 0.5, 1]) {
      const grid = document.createElementNS(SVG, "line");
      grid.setAttribute("x1", L);
      grid.setAttribute("x2", W - 4);
      grid.setAttribute("y1", y(top * f));
      grid.setAttribute("y2", y(top * f));
      grid.setAttribute("class", "grid");
      svg.appendChild(grid);
      label(svg, L - 4, y(top * f) + 4, String(+(top * f).toPrecision(3)), "end");
    }
    const step = seconds > 60 ? 60 : 15;
    for (let ago = seconds; ago >= 0; ago -= step) {
      const text = ago === 0 ? "now" : ago % 60 ? "-" + ago + " s" : "-" + ago / 60 + " min";
      label(svg, x(now - ago), H - 4, text, ago === seconds ? "start" : ago ? "middle" : "end");
    }
    for (const s of series) {
      line(svg, samples.filter((r) => r[0] >= start).map((r) => [x(r[0]), y(r[s.index])]), s.cls);
    }
  }

  function renderCharts(data) {
    const fields = data.series.fields;
    const at = (name) => fields.indexOf(name);
    const samples = data.series.samples;
    const seconds = span(samples, data.now);
    chart($("chart-rate"), samples, data.now, seconds, [
      { index: at("steps"), cls: "steps" },
      { index: at("pdus"), cls: "pdus" },
    ]);
    chart($("chart-latency"), samples, data.now, seconds, [
      { index: at("smpp_max_ms"), cls: "smpp-max" },
      { index: at("smpp_mean_ms"), cls: "smpp" },
      { index: at("http_max_ms"), cls: "http-max" },
      { index: at("http_mean_ms"), cls: "http" },
      { index: at("app_mean_ms"), cls: "app" },
    ]);
    const last = samples[samples.length - 1];
    $("span").textContent = "the last " + (seconds > 60 ? seconds / 60 + " minutes" : "minute") + ", a sample every " + data.interval + " s";
    if (last) {
      $("rate-now").textContent = "now " + last[at("steps")].toFixed(1) + " steps/s, " + last[at("pdus")].toFixed(1) + " PDUs/s";
      $("latency-now").textContent = "last second: SMPP " + last[at("smpp_mean_ms")].toFixed(2) + " ms over " + last[at("smpp_count")] + " reads, phones API " + last[at("http_mean_ms")].toFixed(2) + " ms over " + last[at("http_count")] + ", apps " + last[at("app_mean_ms")].toFixed(1) + " ms over " + last[at("app_count")];
    }
  }

  // -- the poll -----------------------------------------------------------------------------

  function failed(error) {
    if (error instanceof Unauthorized) {
      showToken("The token was refused (HTTP 401).");
      return;
    }
    $("status").textContent = "error: " + error.message;
    $("status").className = "status bad";
  }

  async function poll() {
    clearTimeout(ui.timer);
    if (!ui.token) return;
    try {
      if (!ui.paused) {
        const data = await api("/api/v1/console?minutes=" + MINUTES);
        renderBinds(data);
        renderDialogs(data);
        renderCharts(data);
        if (ui.records) await pollRecords();
        if (ui.faults) {
          const faults = await api("/api/v1/faults");
          ui.faults = faults !== null;
          $("faults-panel").hidden = !ui.faults;
          if (faults) renderFaults(faults);
        }
        await pollTrace();
        $("status").textContent = "live, updated " + clock(data.now);
        $("status").className = "status ok";
        document.body.setAttribute("data-updated", String(data.now));
      }
    } catch (error) {
      failed(error);
      if (error instanceof Unauthorized) return;
    }
    ui.timer = setTimeout(poll, POLL_MS);
  }

  function start() {
    // A token handed in the fragment (/console#token=...) never reaches a server or a log;
    // it is moved to sessionStorage and taken out of the address bar.
    const match = /(?:^#|&)token=([^&]*)/.exec(window.location.hash);
    if (match) {
      ui.token = decodeURIComponent(match[1]);
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      signedIn($("token").value);
    });
    $("sign-out").addEventListener("click", () => showToken(""));
    $("records-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      poll();
    });
    $("follow").addEventListener("change", () => {
      ui.follow = $("follow").checked;
      if (ui.follow && ui.newest) selectBind(ui.newest);
    });
    $("pause").addEventListener("click", () => {
      ui.paused = !ui.paused;
      $("pause").textContent = ui.paused ? "Resume" : "Pause";
      $("status").textContent = ui.paused ? "paused" : "resuming…";
      poll();
    });
    if (ui.token) signedIn(ui.token);
    else showToken("");
    document.body.setAttribute("data-ready", "true");
  }

  start();
})();
