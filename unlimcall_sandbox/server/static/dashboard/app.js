"use strict";
// UnlimCall Sandbox dashboard. Vanilla JS, no CDN, no build step. Signed in by an HttpOnly
// session cookie (the page never sees the admin token after signing in); every request
// that changes something carries X-Unlimcall-Dashboard. Live over server-sent events.
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
  const SCOPES = ["read:balance", "read:cdrs", "read:agents", "read:numbers", "read:invoices",
    "write:calls", "write:hooks"];
  const PAGE = { calls: 15, deliveries: 10, cdrs: 12, messages: 20 };
  const VIEWS = ["signin", "floor", "calls", "story", "webhooks", "account"];
  const FLIGHT_SHOWN = 7;
  const ACTIVITY = { idle: "Idle", ringing: "Ringing", talking: "Talking", "wrap-up": "Wrap-up" };

  const state = {
    customer: null,
    accounts: [],
    view: null,
    source: null,
    clock: { base: Date.now() / 1000, at: performance.now(), scale: 1 },
    floor: null,
    demo: null,
    offsets: { calls: 0, deliveries: 0, cdrs: 0, messages: 0 },
    storyId: null,
    inbox: null,
    messageId: null,
    message: null,
    bodyView: "pretty",
    currency: "USD",
    timers: {},
  };

  // -- small helpers ----------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const pad = (n) => String(n).padStart(2, "0");

  function hms(epoch) {  // sandbox time of day, UTC
    if (epoch === null || epoch === undefined) return "—";
    const d = new Date(epoch * 1000);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  }
  function hm(epoch) {
    const d = new Date(epoch * 1000);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }
  function isoHms(iso) { return iso ? iso.slice(11, 19) : "—"; }
  function isoDay(iso) { return iso ? `${iso.slice(0, 10)} ${iso.slice(11, 19)}` : "—"; }
  function duration(sec) {
    sec = Math.max(0, Math.floor(sec));
    const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = sec % 60;
    return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  }
  function money(units, digits = 2) {
    try {
      return new Intl.NumberFormat("en-US", { style: "currency", currency: state.currency,
        minimumFractionDigits: digits, maximumFractionDigits: digits }).format(units);
    } catch (e) { return `${units.toFixed(digits)} ${state.currency}`; }
  }
  const cents = (c, digits = 2) => money(c / 100, digits);
  function sandboxNow() {
    const c = state.clock;
    return c.base + ((performance.now() - c.at) / 1000) * c.scale;
  }
  function setClock(sandboxTime, scale) {
    state.clock = { base: sandboxTime, at: performance.now(), scale: scale || state.clock.scale };
  }
  function throttle(name, ms, fn) {  // at most once per ms, the last call's effect included
    if (state.timers[name]) return;
    state.timers[name] = setTimeout(() => { state.timers[name] = null; fn().catch(report); }, ms);
  }
  function debounce(name, ms, fn) {
    clearTimeout(state.timers[name]);
    state.timers[name] = setTimeout(() => { fn().catch(report); }, ms);
  }
  function toast(text) {
    const t = $("#toast");
    t.textContent = text;
    clearTimeout(state.timers.toast);
    state.timers.toast = setTimeout(() => { t.textContent = ""; }, 5000);
  }
  function report(err) {
    if (err && err.signedOut) return;
    toast(err && err.message ? err.message : String(err));
  }

  function outcomeLabel(c) {
    if (!c.outcome) return null;  // not reached yet
    const base = { answered: "answered", busy: "busy", no_answer: "no answer", failed: "failed" }[c.outcome] || c.outcome;
    if (c.state !== "ended") return base;
    if (c.outcome === "answered") {
      return { voicemail: "voicemail", transferred: "transferred", dnc: "do-not-call",
        lead_completed: "lead completed" }[c.scenario] || "answered";
    }
    return base;
  }
  const stateLabel = (s) => s.replace("_", " ");

  async function api(method, path, body) {
    const headers = { "X-Unlimcall-Dashboard": "1", "Accept": "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const r = await fetch(path, { method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.status === 401) {
      signedOut();
      const err = new Error("Signed out.");
      err.signedOut = true;
      throw err;
    }
    if (!r.ok) throw new Error((data && data.message) || `${method} ${path}: HTTP ${r.status}`);
    return data;
  }

  // -- signing in --------------------------------------------------------------------------

  function showOnly(view) {
    for (const v of VIEWS) $(`#view-${v}`).hidden = v !== view;
    state.view = view;
    for (const a of $$("#nav a")) {
      const current = a.dataset.view === view || (view === "story" && a.dataset.view === "calls");
      if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
    }
  }

  function signedOut(expired) {
    if (state.source) { state.source.close(); state.source = null; }
    $("#nav").hidden = true;
    $("#tools").hidden = true;
    $("#signin-expired").hidden = !expired;
    showOnly("signin");
    document.title = "Sign in · UnlimCall Sandbox";
  }

  async function signIn(event) {
    event.preventDefault();
    $("#signin-error").textContent = "";
    const token = $("#admin-token").value.trim();
    try {
      const r = await fetch("/dashboard/session", { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Unlimcall-Dashboard": "1" },
        body: JSON.stringify({ token }) });
      if (!r.ok) {
        const data = await r.json().catch(() => ({}));
        throw new Error(data.message || `HTTP ${r.status}`);
      }
      $("#admin-token").value = "";
      await start();
    } catch (err) {
      $("#signin-error").textContent = "That token was refused: " + err.message;
    }
  }

  async function signOut() {
    await fetch("/dashboard/logout", { method: "POST", credentials: "same-origin",
      headers: { "X-Unlimcall-Dashboard": "1" } });
    signedOut(false);
  }

  async function start() {
    $("#nav").hidden = false;
    $("#tools").hidden = false;
    await loadAccounts();
    const saved = localStorage.getItem("unlimcall-dashboard-customer");
    const known = (id) => state.accounts.some((a) => a.customerId === id);
    const demo = (await api("GET", "/_sandbox/demo")).demo;
    setDemo(demo);
    let customer = state.accounts.length ? state.accounts[0].customerId : null;
    if (demo && demo.status !== "finished" && known(demo.customerId)) customer = demo.customerId;
    else if (saved && known(saved)) customer = saved;
    if (customer) await pick(customer, false);
    await route(false);
  }

  async function loadAccounts() {
    const list = await api("GET", "/_sandbox/accounts");
    state.accounts = list.accounts;
    const select = $("#account");
    select.replaceChildren(...list.accounts.map((a) =>
      el("option", { value: a.customerId }, `${a.companyName} (${a.customerId})`)));
    if (state.customer) select.value = state.customer;
  }

  async function pick(customer, reload = true) {
    state.customer = customer;
    $("#account").value = customer;
    localStorage.setItem("unlimcall-dashboard-customer", customer);
    state.offsets = { calls: 0, deliveries: 0, cdrs: 0, messages: 0 };
    state.floor = null;
    state.inbox = null;
    state.messageId = null;
    state.message = null;
    const acct = state.accounts.find((a) => a.customerId === customer);
    if (acct) state.currency = acct.currency;
    connect();
    if (reload) await route(false);
  }

  // -- routing -----------------------------------------------------------------------------

  function parseHash() {
    const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
    const name = parts[0] || "floor";
    if (name === "calls" && parts[1]) return { view: "story", id: parts[1] };
    if (name === "webhooks") return { view: "webhooks", inbox: parts[1], message: parts[2] };
    return { view: VIEWS.includes(name) && name !== "signin" && name !== "story" ? name : "floor" };
  }

  async function route(focus = true) {
    if ($("#nav").hidden) return;
    const r = parseHash();
    showOnly(r.view);
    const title = { floor: "Call floor", calls: "Calls", story: "Call", webhooks: "Webhooks", account: "Account" }[r.view];
    document.title = `${title} · UnlimCall Sandbox`;
    if (focus) {
      const h = $(`#view-${r.view} h1`);
      if (h) h.focus({ preventScroll: false });
    }
    if (!state.customer) return;
    if (r.view === "floor") await Promise.all([loadFloor(), loadCharts()]);
    else if (r.view === "calls") await loadCalls();
    else if (r.view === "story") await loadStory(r.id);
    else if (r.view === "webhooks") await loadWebhooks(r.inbox, r.message);
    else if (r.view === "account") await loadAccount();
  }

  // -- live stream ---------------------------------------------------------------------------

  function connect() {
    if (state.source) state.source.close();
    const live = $("#live");
    live.textContent = "connecting";
    live.classList.remove("on");
    const src = new EventSource(`/_sandbox/stream/${encodeURIComponent(state.customer)}`);
    state.source = src;
    src.addEventListener("hello", (e) => {
      const h = JSON.parse(e.data);
      setClock(h.sandboxTime, h.scale);
      live.textContent = "live";
      live.classList.add("on");
    });
    src.addEventListener("floor", (e) => {
      const f = JSON.parse(e.data);
      setClock(f.sandboxTime, f.scale);
      state.floor = f;
      if (f.demo) setDemo(f.demo);
      if (state.view === "floor") renderFloor();
      if (state.view === "floor") throttle("charts", 3000, loadCharts);
    });
    src.addEventListener("call", (e) => {
      const c = JSON.parse(e.data);
      if (state.view === "calls" && state.offsets.calls === 0) throttle("calls", 500, loadCalls);
      if (state.view === "story" && state.storyId === c.callId) throttle("story", 300, () => loadStory(c.callId, true));
    });
    src.addEventListener("delivery", (e) => {
      const d = JSON.parse(e.data);
      const callId = d.payload && d.payload.callId;
      if (state.view === "story" && callId === state.storyId) throttle("story", 300, () => loadStory(state.storyId, true));
      if (state.view === "webhooks") {
        throttle("messages", 700, () => loadMessages(true));
        if (state.offsets.deliveries === 0) throttle("deliveries", 1000, loadDeliveries);
      }
    });
    src.addEventListener("signedout", () => signedOut(false));
    src.onerror = () => { live.textContent = "reconnecting"; live.classList.remove("on"); };
  }

  // -- demo ------------------------------------------------------------------------------------

  function setDemo(demo) {
    state.demo = demo;
    const running = demo && demo.status === "running";
    const button = $("#demo-toggle");
    button.textContent = running ? "Stop demo" : "Start demo";
    button.classList.toggle("primary", !running);
    renderDemoStatus();
  }

  function renderDemoStatus() {
    const p = $("#demo-status");
    const d = state.demo;
    if (!d || d.customerId !== state.customer) { p.hidden = true; return; }
    p.hidden = false;
    if (d.status === "running") {
      const left = Math.max(0, d.t.ends - sandboxNow());
      p.textContent = `Demo running · ${d.agents} agents · ${duration(left)} left · ${d.callsPlaced} calls placed`;
    } else if (d.status === "winding_down") {
      p.textContent = `Demo ending · no new calls · ${d.callsInFlight} still in flight · ${d.callsPlaced} placed`;
    } else {
      p.textContent = `Demo finished · ${d.callsPlaced} calls placed${d.stoppedAt ? " (stopped early)" : ""}`;
    }
    if (d.lastError) p.textContent += ` · last error: ${d.lastError}`;
  }

  async function toggleDemo() {
    const button = $("#demo-toggle");
    button.disabled = true;
    try {
      if (state.demo && state.demo.status === "running") {
        setDemo(await api("POST", "/_sandbox/demo/stop"));
        toast("Demo stopped: no new calls; the ones in flight finish.");
      } else {
        const demo = await api("POST", "/_sandbox/demo", { agents: 12, minutes: 10 });
        setDemo(demo);
        await loadAccounts();
        toast(`Demo started on ${demo.customerId}: ${demo.agents} agents for ${demo.minutes} minutes.`);
        await pick(demo.customerId, location.hash === "#/floor" || !location.hash);
        if (location.hash !== "#/floor") location.hash = "#/floor";
      }
    } catch (err) { report(err); } finally { button.disabled = false; }
  }

  // -- the call floor ---------------------------------------------------------------------------

  async function loadFloor() {
    const f = await api("GET", `/_sandbox/dashboard/accounts/${state.customer}/floor`);
    setClock(f.sandboxTime, f.scale);
    state.floor = f;
    if (f.demo && (!state.demo || state.demo.id === f.demo.id)) setDemo(f.demo);
    renderFloor();
  }

  function tileState(agent, now) {
    if (agent.activity === "wrap-up" && agent.until !== null && now >= agent.until
        && agent.lastCall && agent.lastCall.state === "ended") {
      return { activity: "idle", since: agent.until, until: null };
    }
    return agent;
  }

  function renderFloor() {
    const f = state.floor;
    if (!f) return;
    state.currency = f.account.currency;
    $("#floor-company").textContent = `· ${f.account.companyName}`;
    const list = $("#tiles");
    const seen = new Set();
    const now = sandboxNow();
    for (const agent of f.agents) {
      seen.add(agent.id);
      let li = list.querySelector(`li[data-agent="${agent.id}"]`);
      if (!li) {
        li = el("li", { class: "tile", "data-agent": agent.id },
          el("div", { class: "name" }),
          el("div", { class: "row" }, el("span", { class: "chip" }), el("span", { class: "timer" })),
          el("div", { class: "detail" }));
        list.append(li);
      }
      updateTile(li, agent, now);
    }
    for (const li of $$("li[data-agent]", list)) if (!seen.has(li.dataset.agent)) li.remove();
    $("#tiles-empty").hidden = f.agents.length > 0;
    const counts = {};
    for (const a of f.agents) { const s = tileState(a, now).activity; counts[s] = (counts[s] || 0) + 1; }
    $("#agents-summary").textContent = f.agents.length
      ? `· ${counts.talking || 0} talking, ${counts.ringing || 0} ringing, ${counts["wrap-up"] || 0} wrapping up, ${counts.idle || 0} idle`
      : "";
    const flight = $("#flight");
    flight.replaceChildren(...f.inFlight.slice(0, FLIGHT_SHOWN).map((c) => el("li", { "data-call": c.callId },
      el("a", { href: `#/calls/${c.callId}` }, c.toNumber),
      el("span", { class: `chip st-${c.state}` }, c.state === "answered" ? "talking" : stateLabel(c.state)),
      el("span", { class: "who" }, `${c.country} · ${c.agentLabel || `agent ${c.aiAgentId}`}`),
      el("span", { class: "who timer", "data-since": c.state === "answered" ? c.t.answered : c.t.created }, ""))));
    $("#flight-empty").hidden = f.inFlightCount > 0;
    const more = $("#flight-more");
    more.hidden = f.inFlightCount <= FLIGHT_SHOWN;
    more.replaceChildren(el("a", { href: "#/calls", onclick: () => { $("#calls-flight").checked = true; } },
      `and ${f.inFlightCount - FLIGHT_SHOWN} more`));
    $("#kpi-flight").textContent = String(f.inFlightCount);
    $("#kpi-calls").textContent = String(f.lastHour.calls);
    $("#kpi-answer").textContent = f.lastHour.reached ? `${Math.round((100 * f.lastHour.answered) / f.lastHour.reached)} %` : "—";
    $("#kpi-balance").textContent = money(f.account.balance, 4);
    renderDemoStatus();
    tick();
  }

  function updateTile(li, agent, now) {
    const s = tileState(agent, now);
    li.className = `tile act-${s.activity}`;
    li.dataset.activity = s.activity;
    $(".name", li).textContent = agent.label;
    $(".name", li).title = `${agent.label} (agent ${agent.id}, ${agent.sipUsername})`;
    const chip = $(".chip", li);
    chip.className = `chip act-${s.activity}`;
    chip.textContent = agent.provisioned ? ACTIVITY[s.activity] : "Not provisioned";
    const timer = $(".timer", li);
    if (s.since !== null && s.since !== undefined) timer.dataset.since = s.since; else delete timer.dataset.since;
    if (s.since === null || s.since === undefined) timer.textContent = "";
    const detail = $(".detail", li);
    const call = s.activity === "idle" ? null : agent.call;
    if (call) {
      const link = el("a", { href: `#/calls/${call.callId}` }, call.toNumber);
      const what = s.activity === "wrap-up" ? (outcomeLabel(call) || "ended") : call.country;
      detail.replaceChildren(link, ` · ${what}`);
    } else if (agent.lastCall) {
      detail.replaceChildren(`last: ${outcomeLabel(agent.lastCall) || agent.lastCall.state} · ${agent.lastCall.country}`);
    } else {
      detail.replaceChildren("no calls yet");
    }
  }

  function tick() {  // every second: clocks, timers, ticking spend, tile transitions
    const now = sandboxNow();
    $("#clock-time").textContent = `${hms(now)} UTC${state.clock.scale !== 1 ? ` ×${state.clock.scale}` : ""}`;
    if (state.view === "floor" && state.floor) {
      const f = state.floor;
      for (const li of $$("#tiles li[data-agent]")) {
        const agent = f.agents.find((a) => a.id === li.dataset.agent);
        if (agent && agent.activity === "wrap-up" && now >= agent.until) updateTile(li, agent, now);
      }
      let running = f.lastHour.spendCents;
      for (const c of f.inFlight) {
        if (c.state === "answered" && c.t.answered) running += ((now - c.t.answered) * c.centsPerMinute) / 60;
      }
      $("#kpi-spend").textContent = cents(running, 4);
      renderDemoStatus();
    }
    for (const t of $$("[data-since]")) {
      if (t.offsetParent === null) continue;
      t.textContent = duration(now - Number(t.dataset.since));
    }
  }

  // -- charts -----------------------------------------------------------------------------------

  async function loadCharts() {
    if (state.view !== "floor") return;
    const c = await api("GET", `/_sandbox/dashboard/accounts/${state.customer}/charts`);
    const outcomes = [["ANSWERED", "answered"], ["NO ANSWER", "no answer"], ["BUSY", "busy"], ["FAILED", "failed"]];
    chart($("#chart-calls"), c, {
      title: "Calls by outcome", total: `${c.totals.calls} call${c.totals.calls === 1 ? "" : "s"}`, kind: "bars",
      series: outcomes.map(([k, label]) => ({ label, cls: `s-${k.replace(" ", "")}`, values: c.calls[k] })),
      format: (v) => String(Math.round(v)), integer: true, empty: "No calls ended in the last 60 minutes.",
    });
    chart($("#chart-spend"), c, {
      title: "Spend per minute", total: cents(c.totals.spendCents), kind: "bars",
      series: [{ label: "spend", cls: "s-spend", values: c.spendCents }],
      format: (v) => (v < 100 ? `${Math.round(v * 10) / 10}¢` : cents(v, 2)), empty: "Nothing billed in the last 60 minutes.",
    });
    const attempts = c.totals.delivered + c.totals.failed;
    chart($("#chart-attempts"), c, {
      title: "Webhook attempts", kind: "bars",
      total: attempts ? `${Math.round((100 * c.totals.delivered) / attempts)} % delivered of ${attempts}` : "none",
      series: [{ label: "delivered", cls: "s-delivered", values: c.attempts.delivered },
        { label: "failed or retried", cls: "s-failed", values: c.attempts.failed }],
      format: (v) => String(Math.round(v)), integer: true, empty: "No webhook attempts in the last 60 minutes.",
    });
    chart($("#chart-latency"), c, {
      title: "Webhook latency", kind: "lines",
      total: c.totals.latencyP50 === null ? "—" : `p50 ${c.totals.latencyP50} ms · p95 ${c.totals.latencyP95} ms`,
      series: [{ label: "p50", cls: "l-p50", dot: "d-p50", values: c.latencyMs.p50 },
        { label: "p95", cls: "l-p95", dot: "d-p95", values: c.latencyMs.p95 }],
      format: (v) => (v >= 1000 ? `${Math.round(v / 100) / 10} s` : `${Math.round(v)} ms`), integer: true,
      empty: "No webhook attempts in the last 60 minutes.",
    });
  }

  function niceMax(v, integer) {
    if (v <= 0) return integer ? 4 : 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return integer ? Math.max(Math.ceil(m * p), 2) : m * p;
    return 10 * p;
  }

  function chart(figure, c, o) {
    const W = 560, H = 180, L = 50, R = 10, T = 10, B = 24;
    const pw = W - L - R, ph = H - T - B, n = o.series[0].values.length;
    const span = c.to - c.from, x = (t) => L + ((t - c.from) / span) * pw;
    const totals = [];
    for (let i = 0; i < n; i++) {
      if (o.kind === "bars") totals.push(o.series.reduce((s, ser) => s + (ser.values[i] || 0), 0));
      else totals.push(Math.max(0, ...o.series.map((ser) => ser.values[i] || 0)));
    }
    const peak = Math.max(0, ...totals);
    const max = niceMax(peak, o.integer);
    const y = (v) => T + ph - (v / max) * ph;
    const parts = [`<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(summary(c, o, totals, peak))}" xmlns="http://www.w3.org/2000/svg">`];
    for (const f of [0, 0.5, 1]) {
      const v = max * f, yy = y(v).toFixed(1);
      parts.push(`<line class="gridline" x1="${L}" x2="${W - R}" y1="${yy}" y2="${yy}"/>`);
      parts.push(`<text x="${L - 6}" y="${(Number(yy) + 4).toFixed(1)}" text-anchor="end">${esc(o.format(v))}</text>`);
    }
    for (let t = Math.ceil(c.from / 600) * 600; t <= c.to; t += 600) {
      const xx = x(t).toFixed(1);
      parts.push(`<line class="axis" x1="${xx}" x2="${xx}" y1="${T + ph}" y2="${T + ph + 4}"/>`);
      parts.push(`<text x="${xx}" y="${H - 6}" text-anchor="middle">${hm(t)}</text>`);
    }
    parts.push(`<line class="axis" x1="${L}" x2="${W - R}" y1="${T + ph}" y2="${T + ph}"/>`);
    const bw = Math.max(1, pw / n - 1.5);
    if (o.kind === "bars") {
      for (let i = 0; i < n; i++) {
        let base = 0;
        const t0 = c.from + i * c.bucketSec;
        for (const ser of o.series) {
          const v = ser.values[i] || 0;
          if (!v) continue;
          const y1 = y(base + v), y0 = y(base);
          parts.push(`<rect class="${ser.cls}" x="${x(t0).toFixed(1)}" y="${y1.toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(0.5, y0 - y1).toFixed(1)}"><title>${hm(t0)} · ${esc(ser.label)}: ${esc(o.format(v))}</title></rect>`);
          base += v;
        }
      }
    } else {
      for (const ser of o.series) {
        let d = "", pen = false;
        for (let i = 0; i < n; i++) {
          const v = ser.values[i];
          const xx = (x(c.from + (i + 0.5) * c.bucketSec)).toFixed(1);
          if (v === null || v === undefined) { pen = false; continue; }
          d += `${pen ? "L" : "M"}${xx} ${y(v).toFixed(1)} `;
          pen = true;
          parts.push(`<circle class="${ser.dot}" cx="${xx}" cy="${y(v).toFixed(1)}" r="2.2"><title>${hm(c.from + i * c.bucketSec)} · ${esc(ser.label)}: ${esc(o.format(v))}</title></circle>`);
        }
        if (d) parts.push(`<path class="${ser.cls}" d="${d.trim()}"/>`);
      }
    }
    const nx = x(c.now).toFixed(1);
    parts.push(`<line class="now" x1="${nx}" x2="${nx}" y1="${T}" y2="${T + ph}"/>`);
    if (!peak) parts.push(`<text x="${L + pw / 2}" y="${T + ph / 2}" text-anchor="middle">${esc(o.empty)}</text>`);
    parts.push("</svg>");
    const legend = el("ul", { class: "legend" }, o.series.map((s) =>
      el("li", {}, el("span", { class: `swatch ${o.kind === "lines" ? "line " : ""}${s.cls}`, "aria-hidden": "true" }), s.label)));
    const caption = el("figcaption", {}, o.title, el("span", { class: "total" }, o.total));
    const holder = el("div");
    holder.innerHTML = parts.join("");
    figure.replaceChildren(caption, legend, holder.firstChild);
  }

  function summary(c, o, totals, peak) {
    if (!peak) return `${o.title}, ${hm(c.from)} to ${hm(c.to)} sandbox time: ${o.empty}`;
    const at = totals.indexOf(peak);
    return `${o.title}, ${hm(c.from)} to ${hm(c.to)} sandbox time: ${o.total}; highest ${o.format(peak)} at ${hm(c.from + at * c.bucketSec)}.`;
  }

  // -- pagination ---------------------------------------------------------------------------------

  function pager(name, total, offset, limit, load, noun) {
    const box = $(`.pager[data-for="${name}"]`);
    if (total <= limit && offset === 0) { box.replaceChildren(); return; }
    const prev = el("button", { type: "button", "aria-label": `Previous page of ${noun}`, disabled: offset === 0 ? true : undefined,
      onclick: () => { state.offsets[name] = Math.max(0, offset - limit); load().catch(report); } }, "← Previous");
    const next = el("button", { type: "button", "aria-label": `Next page of ${noun}`, disabled: offset + limit >= total ? true : undefined,
      onclick: () => { state.offsets[name] = offset + limit; load().catch(report); } }, "Next →");
    const shown = total ? `${offset + 1}–${Math.min(total, offset + limit)} of ${total}` : "none";
    box.replaceChildren(prev, el("span", {}, shown), next);
  }

  // -- calls and a call's story -----------------------------------------------------------------

  async function loadCalls() {
    const flight = $("#calls-flight").checked;
    const q = new URLSearchParams({ offset: state.offsets.calls, limit: PAGE.calls, inFlight: flight });
    const page = await api("GET", `/_sandbox/dashboard/accounts/${state.customer}/calls?${q}`);
    const now = sandboxNow();
    $("#calls tbody").replaceChildren(...page.items.map((c) => {
      const out = outcomeLabel(c);
      const end = c.t.ended !== null ? c.t.ended : now;
      const row = el("tr", { class: "clickable", "data-call": c.callId,
        onclick: (e) => { if (e.target.tagName !== "A") location.hash = `#/calls/${c.callId}`; } },
        el("td", {}, el("a", { href: `#/calls/${c.callId}`, "aria-label": `Call ${c.callId.slice(0, 8)} to ${c.toNumber}` }, el("code", {}, c.callId.slice(0, 8)))),
        el("td", {}, c.agentLabel || c.aiAgentId),
        el("td", {}, c.toNumber, el("div", { class: "muted" }, c.country)),
        el("td", {}, el("span", { class: `chip st-${c.state}` }, stateLabel(c.state))),
        el("td", { class: "outcome" }, out || el("span", { class: "muted" }, "—")),
        el("td", { class: "num" }, isoHms(c.createdAt)),
        el("td", { class: "num" }, c.t.ended !== null ? duration(end - c.t.created)
          : el("span", { "data-since": c.t.created }, duration(now - c.t.created))));
      return row;
    }));
    if (!page.items.length) {
      $("#calls tbody").replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "muted" },
        flight ? "No call in flight." : "No calls yet: place one from Account, or press Start demo.")));
    }
    pager("calls", page.total, page.offset, page.limit, loadCalls, "calls");
  }

  async function loadStory(id, quiet = false) {
    state.storyId = id;
    let s;
    try {
      s = await api("GET", `/_sandbox/dashboard/calls/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!quiet) report(err);
      return;
    }
    if (state.storyId !== id) return;
    setClock(s.sandboxTime, state.clock.scale);
    const c = s.call;
    $("#story-id").textContent = c.callId;
    const out = outcomeLabel(c);
    const fact = (k, v) => el("div", {}, el("dt", {}, k), el("dd", {}, v));
    const billed = s.cdr ? `${s.cdr.billsec} s` : "—";
    $("#story-facts").replaceChildren(
      fact("State", el("span", { class: `chip st-${c.state}` }, stateLabel(c.state))),
      fact("Outcome", out || "not reached yet"),
      fact("To", `${c.toNumber} · ${c.country}`),
      fact("From", c.fromNumber || (s.cdr ? s.cdr.src : "agent's caller id")),
      fact("Agent", `${c.agentLabel || "?"} (${c.aiAgentId})`),
      fact("Account", c.customerId),
      fact("Queued", `${isoDay(c.createdAt)} UTC`),
      c.state === "ended" ? fact("Billed", billed)
        : fact(c.state === "answered" ? "Talking for" : "Waiting for",
          el("span", { "data-since": c.state === "answered" ? c.t.answered : c.t.created }, "")),
      fact("Price", s.cdr ? `${s.cdr.sellPriceCents}¢ (${c.centsPerMinute}¢/min)` : `${c.centsPerMinute}¢/min`));
    $("#timeline").replaceChildren(...s.timeline.map((t) => el("li", {
      class: `k-${t.kind}${t.outcome ? ` o-${t.outcome}` : ""}`, "data-kind": t.kind, "data-state": t.state || null },
      el("time", { datetime: t.atIso }, `${isoHms(t.atIso)} UTC`),
      el("span", { class: "what" }, t.label))));
    if (c.state !== "ended") {
      const doing = { queued: "dialing", ringing: "ringing", answered: "talking" }[c.state] || stateLabel(c.state);
      const since = c.state === "answered" ? c.t.answered : (c.t.ringing || c.t.created);
      $("#timeline").append(el("li", { class: "k-now", "data-kind": "now" },
        el("time", {}, "now"),
        el("span", { class: "what" }, `${doing}… `, el("span", { "data-since": since }, duration(sandboxNow() - since)))));
    }
    const cdr = $("#story-cdr");
    $("#story-no-cdr").hidden = !!s.cdr;
    cdr.replaceChildren(...(s.cdr ? [
      fact("Id", s.cdr.id), fact("Start", isoDay(s.cdr.startTime)), fact("Duration", `${s.cdr.duration} s`),
      fact("Billsec", `${s.cdr.billsec} s`), fact("Disposition", s.cdr.disposition), fact("Src → dst", `${s.cdr.src} → ${s.cdr.dst}`),
      fact("Country", s.cdr.country), fact("Price", `${s.cdr.sellPriceCents}¢ ${s.cdr.currency}`), fact("SIP user", s.cdr.sipUsername),
    ] : []));
    $("#story-no-events").hidden = s.events.length > 0;
    $("#story-events").replaceChildren(...s.events.map((e) => el("details", {},
      el("summary", {}, el("strong", {}, e.event), ` · ${isoHms(e.createdAt)} UTC`),
      jsonBlock(e.body, `Body of ${e.event}`))));
    $("#story-no-deliveries").hidden = s.deliveries.length > 0;
    $("#story-no-deliveries").textContent = c.state === "ended"
      ? "No hook of this account subscribes to this call's events."
      : "Webhooks go out when the call ends (every event has one delivery per subscribed hook).";
    $("#story-deliveries").replaceChildren(...s.deliveries.map(deliveryCard));
  }

  function jsonBlock(value, label) {
    const pre = el("pre", { class: "code", tabindex: "0", "aria-label": label });
    pre.innerHTML = highlight(JSON.stringify(value, null, 2));
    return pre;
  }

  function highlight(json) {
    return esc(json).replace(/("(?:\\u[a-fA-F0-9]{4}|\\[^u]|[^\\"])*"(\s*:)?|\b(?:true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)/g, (m) => {
      let cls = "j-num";
      if (m.startsWith('"')) cls = m.endsWith(":") ? "j-key" : "j-str";
      else if (/true|false|null/.test(m)) cls = "j-lit";
      return `<span class="${cls}">${m}</span>`;
    });
  }

  function verdictChip(v) {
    if (!v) return el("span", { class: "muted" }, "not checked (external receiver)");
    const text = { verified: "✓ verified", invalid: "✗ invalid", unsigned: "unsigned", unknown_hook: "unknown hook" }[v] || v;
    return el("span", { class: `chip ${v}` }, text);
  }

  function deliveryCard(d) {
    const rows = d.attempts.map((a) => el("tr", {},
      el("td", { class: "num" }, `#${a.number}`),
      el("td", { class: "num" }, `${isoHms(a.attemptedAt)}`),
      el("td", {}, a.statusCode !== null ? el("span", { class: `chip ${a.outcome === "delivered" ? "ok" : "bad"}` }, String(a.statusCode)) : el("span", { class: "chip bad" }, a.error || "error")),
      el("td", { class: "num" }, `${a.latencyMs} ms`),
      el("td", {}, verdictChip(a.signature)),
      el("td", {}, a.responseBody ? el("pre", { class: "answer" }, a.responseBody) : el("span", { class: "muted" }, "—")),
      el("td", {}, a.outcome)));
    const inbox = d.inboxMessages && d.inboxMessages.length
      ? el("p", {}, "Received by the inbox: ", ...d.inboxMessages.map((m, i) => [i ? ", " : "",
        el("a", { href: `#/webhooks/${encodeURIComponent(m.inbox)}/${m.id}` }, `request ${m.id} (${m.signature})`)]))
      : null;
    return el("div", { class: "delivery", "data-delivery": d.id },
      el("div", { class: "delivery-head" },
        el("strong", {}, d.event),
        el("span", { class: `chip ${d.status}` }, d.status),
        el("span", { class: "target" }, `→ ${d.targetUrl}`),
        el("button", { type: "button", onclick: () => redeliver(d.id) }, "Redeliver")),
      d.attempts.length ? el("div", { class: "scroll", tabindex: "0", role: "region", "aria-label": `Attempts of ${d.event}` },
        el("table", {}, el("caption", { class: "sr-only" }, `Attempts of the ${d.event} delivery`),
          el("thead", {}, el("tr", {}, ...["Attempt", "At (UTC)", "Status", "Latency", "Signature", "Receiver's answer", "Outcome"].map((h) => el("th", { scope: "col" }, h)))),
          el("tbody", {}, rows)))
        : el("p", { class: "muted" }, d.status === "pending" ? "First attempt due now." : "No attempt."),
      inbox);
  }

  async function redeliver(id) {
    try {
      await api("POST", `/_sandbox/deliveries/${id}/redeliver`);
      toast("Redelivery queued: a new attempt, freshly signed.");
    } catch (err) { report(err); }
  }

  // -- webhooks: inbox inspector and deliveries ------------------------------------------------------

  async function loadWebhooks(inbox, messageId) {
    const data = await api("GET", "/_sandbox/dashboard/inboxes");
    const names = data.inboxes.map((i) => i.name);
    const own = `demo-${state.customer}`;
    const chosen = inbox || state.inbox || (names.includes(own) ? own : names[0]) || own;
    if (!names.includes(chosen)) names.unshift(chosen);
    if (state.inbox !== chosen) {
      state.offsets.messages = 0;
      state.messageId = null;
      state.message = null;
    }
    state.inbox = chosen;
    const select = $("#inbox-name");
    select.replaceChildren(...names.map((n) => {
      const info = data.inboxes.find((i) => i.name === n);
      return el("option", { value: n }, info ? `${n} (${info.count})` : n);
    }));
    select.value = chosen;
    $("#inbox-url").textContent = `${location.origin}/_sandbox/inbox/${chosen}`;
    if (messageId) state.messageId = Number(messageId);
    await Promise.all([loadMessages(false), loadDeliveries()]);
  }

  async function loadMessages(quiet) {
    if (!state.inbox) return;
    const q = new URLSearchParams({ offset: state.offsets.messages, limit: PAGE.messages });
    const page = await api("GET", `/_sandbox/dashboard/inboxes/${encodeURIComponent(state.inbox)}?${q}`);
    $("#messages-count").textContent = `· ${page.total}`;
    $("#messages-empty").hidden = page.items.length > 0;
    $("#messages").replaceChildren(...page.items.map((m) => el("li", {},
      el("button", { type: "button", "data-message": m.id, "aria-current": m.id === state.messageId ? "true" : null,
        onclick: () => { location.hash = `#/webhooks/${encodeURIComponent(state.inbox)}/${m.id}`; } },
        el("span", {}, el("strong", {}, m.event || m.method), ` #${m.id}`),
        el("span", { class: `chip ${m.signature}` }, m.signature === "verified" ? "✓ verified" : m.signature.replace("_", " ")),
        el("span", { class: "when" }, `${isoHms(m.receivedAt)} UTC · answered ${m.answered}`),
        el("span", { class: "when" }, `${m.bytes} B`)))));
    pager("messages", page.total, page.offset, page.limit, () => loadMessages(false), "requests");
    if (!state.messageId && page.items.length && !quiet) state.messageId = page.items[0].id;
    if (state.messageId && (!state.message || state.message.id !== state.messageId)) await loadMessage(state.messageId);
    else if (!state.messageId) { $("#message-body").hidden = true; $("#message-empty").hidden = false; }
  }

  async function loadMessage(id) {
    let m;
    try { m = await api("GET", `/_sandbox/dashboard/inbox-messages/${id}`); } catch (err) { report(err); return; }
    state.message = m;
    state.messageId = m.id;
    for (const b of $$("#messages button")) {
      if (Number(b.dataset.message) === m.id) b.setAttribute("aria-current", "true"); else b.removeAttribute("aria-current");
    }
    $("#message-empty").hidden = true;
    $("#message-body").hidden = false;
    $("#message-h").textContent = `Request #${m.id}`;
    const verdicts = {
      verified: ["✓ Signature verified", `HMAC-SHA256 over “t.body” with the secret of the hook that sent delivery ${m.deliveryId}, signed at ${m.signedAt || "?"} (wall clock), within the 300-second tolerance when it arrived.`],
      invalid: ["✗ Signature invalid", "The X-Unlimcall-Signature does not match the hook's secret, or it was signed more than 300 seconds before it arrived."],
      unsigned: ["No signature", "The request had no X-Unlimcall-Signature header."],
      unknown_hook: ["Signature not checkable", "Signed, but no hook of this sandbox sent this delivery id."],
    };
    const [head, why] = verdicts[m.signature] || [m.signature, ""];
    const verdict = $("#verdict");
    verdict.className = `verdict ${m.signature}`;
    verdict.replaceChildren(el("strong", {}, head), el("p", {}, why));
    const fact = (k, v) => el("div", {}, el("dt", {}, k), el("dd", {}, v));
    $("#message-facts").replaceChildren(
      fact("Received", `${isoDay(m.receivedAt)} UTC`),
      fact("Method", m.method),
      fact("Event", m.event || "—"),
      fact("Delivery", m.delivery ? `${m.deliveryId} (${m.delivery.status}, ${m.delivery.attempts} attempt${m.delivery.attempts === 1 ? "" : "s"})` : (m.deliveryId || "—")),
      fact("Answered with", String(m.answered)));
    $("#message-headers tbody").replaceChildren(...Object.entries(m.headers).map(([k, v]) =>
      el("tr", {}, el("td", {}, el("code", {}, k)), el("td", {}, el("code", {}, v)))));
    $("#body-size").textContent = `· ${m.bytes} bytes${m.isJson ? ", JSON" : ""}`;
    $("#message-json").innerHTML = m.isJson ? highlight(JSON.stringify(m.json, null, 2)) : esc("(not JSON: see Raw)");
    $("#message-raw").textContent = m.rawBody;
    setBodyView(m.isJson ? state.bodyView : "raw");
    $("#replay").disabled = !m.deliveryId || !m.delivery;
    const link = $("#message-call");
    link.hidden = !m.callId;
    if (m.callId) link.href = `#/calls/${m.callId}`;
    $("#curl-target").value = $("#curl-target").value || `${location.origin}/_sandbox/inbox/${m.inbox}`;
    if (!$("#curl-box").hidden) renderCurl();
  }

  function setBodyView(which) {
    state.bodyView = which;
    $("#message-json").hidden = which !== "pretty";
    $("#message-raw").hidden = which !== "raw";
    $("#body-pretty").setAttribute("aria-pressed", String(which === "pretty"));
    $("#body-raw").setAttribute("aria-pressed", String(which === "raw"));
  }

  const quote = (s) => `'${String(s).replace(/'/g, `'"'"'`)}'`;
  const HOP = new Set(["host", "content-length", "connection", "accept-encoding", "transfer-encoding", "keep-alive"]);

  function renderCurl() {
    const m = state.message;
    if (!m) return "";
    const target = $("#curl-target").value || `${location.origin}/_sandbox/inbox/${m.inbox}`;
    const lines = [`curl -X ${m.method} ${quote(target)}`];
    for (const [k, v] of Object.entries(m.headers)) if (!HOP.has(k.toLowerCase())) lines.push(`  -H ${quote(`${k}: ${v}`)}`);
    lines.push(`  --data-raw ${quote(m.rawBody)}`);
    const text = lines.join(" \\\n");
    $("#curl").textContent = text;
    return text;
  }

  async function copyCurl() {
    $("#curl-box").hidden = false;
    const text = renderCurl();
    try {
      await navigator.clipboard.writeText(text);
      toast("Copied as curl: the exact request, signature headers and raw body included.");
    } catch (e) {
      toast("Here it is as curl (select it to copy).");
    }
  }

  async function replay() {
    const m = state.message;
    if (!m || !m.deliveryId) return;
    try {
      await api("POST", `/_sandbox/deliveries/${m.deliveryId}/redeliver`);
      toast(`Replaying delivery ${m.deliveryId.slice(0, 8)}: it arrives again, freshly signed.`);
      state.offsets.messages = 0;
      debounce("messages", 800, () => loadMessages(true));
    } catch (err) { report(err); }
  }

  async function loadDeliveries() {
    const q = new URLSearchParams({ offset: state.offsets.deliveries, limit: PAGE.deliveries, status: $("#dlv-status").value });
    const page = await api("GET", `/_sandbox/dashboard/accounts/${state.customer}/deliveries?${q}`);
    $("#deliveries tbody").replaceChildren(...page.items.map((d) => el("tr", { "data-delivery": d.id },
      el("td", {}, d.event),
      el("td", {}, el("span", { class: `chip ${d.status}` }, d.status)),
      el("td", {}, d.attempts.length ? d.attempts.map((a, i) => [i ? el("br") : "",
        `#${a.number}: ${a.statusCode ?? a.error} · ${a.latencyMs} ms${a.signature ? ` · ${a.signature}` : ""}`]) : "—"),
      el("td", { class: "num" }, isoHms(d.createdAt)),
      el("td", { class: "truncate", title: d.targetUrl }, d.targetUrl),
      el("td", {}, el("div", { class: "buttons" },
        el("button", { type: "button", "aria-label": `Redeliver ${d.event} ${d.id.slice(0, 8)}`, onclick: () => redeliver(d.id) }, "Redeliver"),
        d.callId ? el("a", { href: `#/calls/${d.callId}`, "aria-label": `Open the call of ${d.event} ${d.id.slice(0, 8)}` }, "Call") : null)))));
    if (!page.items.length) {
      $("#deliveries tbody").replaceChildren(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "No deliveries.")));
    }
    pager("deliveries", page.total, page.offset, page.limit, loadDeliveries, "deliveries");
  }

  // -- account ------------------------------------------------------------------------------------

  async function loadAccount() {
    const d = await api("GET", `/_sandbox/dashboard/accounts/${state.customer}/details`);
    const a = d.account;
    state.currency = a.currency;
    $("#account-name").textContent = `· ${a.companyName} (${a.customerId})`;
    $("#balance").textContent = money(a.balance, 4);
    $("#acct-flags").textContent = `${a.accountType} · ${a.status} · ${a.provisioned ? "provisioned" : "not provisioned"}`
      + ` · dialer ${a.dialerEnabled ? "on" : "off"} · upstream ${a.balanceUpstream}${a.blocked ? " · blocked" : ""}`;
    const agentSelect = $("#call-agent");
    const chosen = agentSelect.value;
    agentSelect.replaceChildren(...d.agents.map((g) => el("option", { value: g.id }, `${g.id} · ${g.label}`)));
    if (chosen && d.agents.some((g) => g.id === chosen)) agentSelect.value = chosen;
    $("#agents").replaceChildren(...d.agents.map((g) => el("li", {}, `${g.id} · ${g.sipUsername} · ${g.label}${g.provisioned ? "" : " (not provisioned)"}`)));
    $("#tokens").replaceChildren(...(d.tokens.length ? d.tokens.map((t) =>
      el("li", {}, `${t.prefix}… (${t.kind}) ${t.scopes.join(" ") || "no scopes"}${t.revoked ? " · revoked" : ""}`)) : [el("li", {}, "none")]));
    $("#hooks").replaceChildren(...(d.hooks.length ? d.hooks.map((h) =>
      el("li", {}, `${h.event} → ${h.targetUrl}${h.active ? "" : " (deleted)"}`)) : [el("li", {}, "none")]));
    await loadCdrs();
  }

  async function loadCdrs() {
    const q = new URLSearchParams({ offset: state.offsets.cdrs, limit: PAGE.cdrs,
      disposition: $("#f-disp").value, country: $("#f-country").value });
    const page = await api("GET", `/_sandbox/dashboard/accounts/${state.customer}/cdrs?${q}`);
    const country = $("#f-country");
    const keep = country.value;
    country.replaceChildren(el("option", { value: "" }, "any"), ...page.countries.map((c) => el("option", {}, c)));
    country.value = keep;
    $("#cdrs tbody").replaceChildren(...page.items.map((c) => el("tr", {},
      el("td", {}, c.callId ? el("a", { href: `#/calls/${c.callId}` }, c.id) : c.id),
      el("td", { class: "num" }, isoDay(c.startTime)), el("td", {}, c.dst), el("td", {}, c.country),
      el("td", {}, c.disposition), el("td", { class: "num" }, String(c.billsec)),
      el("td", { class: "num" }, `${c.sellPriceCents}¢`))));
    if (!page.items.length) $("#cdrs tbody").replaceChildren(el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No CDRs.")));
    pager("cdrs", page.total, page.offset, page.limit, loadCdrs, "call detail records");
  }

  async function patchAccount(body) {
    try {
      await api("PATCH", `/_sandbox/accounts/${state.customer}`, body);
      await loadAccount();
      toast("Saved.");
    } catch (err) { report(err); }
  }

  // -- wiring -------------------------------------------------------------------------------------

  function wire() {
    $("#signin-form").addEventListener("submit", signIn);
    $("#signout").addEventListener("click", () => signOut().catch(report));
    $("#account").addEventListener("change", (e) => pick(e.target.value).catch(report));
    $("#demo-toggle").addEventListener("click", toggleDemo);
    window.addEventListener("hashchange", () => route(true).catch(report));
    $("#calls-flight").addEventListener("change", () => { state.offsets.calls = 0; loadCalls().catch(report); });
    $("#inbox-name").addEventListener("change", (e) => {
      state.messageId = null;
      state.message = null;
      $("#curl-target").value = "";
      location.hash = `#/webhooks/${encodeURIComponent(e.target.value)}`;
    });
    $("#dlv-status").addEventListener("change", () => { state.offsets.deliveries = 0; loadDeliveries().catch(report); });
    $("#body-pretty").addEventListener("click", () => setBodyView("pretty"));
    $("#body-raw").addEventListener("click", () => setBodyView("raw"));
    $("#copy-curl").addEventListener("click", () => copyCurl().catch(report));
    $("#curl-target").addEventListener("input", renderCurl);
    $("#replay").addEventListener("click", () => replay().catch(report));
    $("#ff").addEventListener("click", async () => {
      try {
        const r = await api("POST", "/_sandbox/clock/fast-forward");
        toast(`Fast-forwarded: ${r.calls} call steps and ${r.deliveries} retries due now.`);
      } catch (err) { report(err); }
    });
    $("#reset").addEventListener("click", async () => {
      if (!confirm("Reset the sandbox to its fixtures? Every account, call and delivery is deleted.")) return;
      try {
        const r = await api("POST", "/_sandbox/reset");
        await loadAccounts();
        await pick(r.customerId);
        toast("The sandbox is back to its fixtures.");
      } catch (err) { report(err); }
    });
    $("#call-preset").addEventListener("change", (e) => { $("#call-to").value = e.target.value; });
    $("#call-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const out = $("#call-result");
      try {
        // The control plane's twin of POST /v1/calls: no portal token is minted for it.
        const r = await api("POST", `/_sandbox/accounts/${state.customer}/calls`,
          { aiAgentId: $("#call-agent").value, toNumber: $("#call-to").value.trim() });
        out.replaceChildren("Queued ", el("a", { href: `#/calls/${r.callId}` }, r.callId));
      } catch (err) { out.textContent = err.message; }
    });
    $("#event-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      try {
        const r = await api("POST", "/_sandbox/events", { customerId: state.customer, event: $("#event-type").value });
        $("#event-result").textContent = `Fired ${r.eventId}: ${r.deliveries} deliveries.`;
      } catch (err) { $("#event-result").textContent = err.message; }
    });
    $("#scopes").replaceChildren(...SCOPES.map((s) => el("label", {}, el("input", { type: "checkbox", value: s }), ` ${s}`)));
    $("#token-form").addEventListener("submit", async (e) => {
      e.preventDefault();
      const scopes = $$("#scopes input:checked").map((i) => i.value);
      try {
        const r = await api("POST", `/_sandbox/accounts/${state.customer}/tokens`, { scopes });
        $("#minted").textContent = r.token;
        await loadAccount();
      } catch (err) { report(err); }
    });
    $("#balance-form").addEventListener("submit", (e) => {
      e.preventDefault();
      patchAccount({ balance: Number($("#set-balance").value) });
    });
    for (const b of $$("[data-patch]")) b.addEventListener("click", () => patchAccount(JSON.parse(b.dataset.patch)));
    $("#f-disp").addEventListener("change", () => { state.offsets.cdrs = 0; loadCdrs().catch(report); });
    $("#f-country").addEventListener("change", () => { state.offsets.cdrs = 0; loadCdrs().catch(report); });
    setInterval(tick, 500);
    setInterval(() => {  // the demo's state (and a kick for a run that lost its job)
      if ($("#nav").hidden) return;
      api("GET", "/_sandbox/demo").then((r) => setDemo(r.demo)).catch(() => {});
      if (state.view === "webhooks") loadMessages(true).catch(() => {});
    }, 10000);
    setInterval(() => { if (state.view === "floor" && !$("#nav").hidden) loadCharts().catch(() => {}); }, 15000);
  }

  async function boot() {
    wire();
    const params = new URLSearchParams(location.search);
    const expired = params.get("signin") === "expired";
    if (location.search) history.replaceState(null, "", `/dashboard${location.hash}`);
    let signed = false;
    try {
      const r = await fetch("/dashboard/session", { credentials: "same-origin" });
      signed = (await r.json()).signedIn;
    } catch (e) { signed = false; }
    if (!signed) { signedOut(expired); return; }
    await start();
  }

  boot().catch(report);
})();
