"use strict";
// UnlimCall Sandbox dashboard: vanilla JS, no CDN; live updates over server-sent events.
const SCOPES = ["read:balance", "read:cdrs", "read:agents", "read:numbers", "read:invoices",
  "write:calls", "write:hooks"];
const $ = (sel) => document.querySelector(sel);
const state = { admin: sessionStorage.getItem("unlimcall-admin") || "", customer: null,
  source: null, calls: new Map(), deliveries: new Map() };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

async function api(method, path, body) {
  const headers = { "Authorization": `Bearer ${state.admin}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error(`${r.status} ${data && data.error}: ${data && data.message}`);
  return data;
}

async function login(event) {
  event && event.preventDefault();
  const token = $("#admin-token").value || state.admin;
  try {
    state.admin = token;
    const list = await api("GET", "/_sandbox/accounts");
    sessionStorage.setItem("unlimcall-admin", token);
    $("#login").hidden = true;
    $("#app").hidden = false;
    const select = $("#account");
    select.replaceChildren(...list.accounts.map((a) =>
      el("option", { value: a.customerId }, `${a.customerId} — ${a.companyName}`)));
    await pick(select.value);
  } catch (err) {
    $("#login-error").textContent = "That token was refused: " + err.message;
  }
}

async function pick(customer) {
  state.customer = customer;
  state.calls.clear();
  state.deliveries.clear();
  await refresh();
  connect();
}

async function refresh() {
  const q = new URLSearchParams({ disposition: $("#f-disp").value, country: $("#f-country").value });
  const o = await api("GET", `/_sandbox/accounts/${state.customer}/overview?${q}`);
  $("#clock").textContent = "sandbox time " + o.sandboxTime;
  const a = o.account;
  $("#balance").textContent = `${a.balance.toFixed(4)} ${a.currency}`;
  $("#acct-flags").textContent = `${a.accountType} · ${a.status} · ${a.provisioned ? "provisioned" : "NOT provisioned"}`
    + ` · dialer ${a.dialerEnabled ? "on" : "off"} · upstream ${a.balanceUpstream}${a.blocked ? " · BLOCKED" : ""}`;
  $("#call-agent").replaceChildren(...o.agents.map((g) => el("option", { value: g.id }, `${g.id} — ${g.label}`)));
  $("#agents").replaceChildren(...o.agents.map((g) => el("li", {}, `${g.id} · ${g.sipUsername} · ${g.label}`)));
  $("#tokens").replaceChildren(...o.tokens.map((t) =>
    el("li", {}, `${t.prefix}… (${t.kind}) ${t.scopes.join(" ") || "no scopes"}${t.revoked ? " — revoked" : ""}`)));
  $("#hooks").replaceChildren(...o.hooks.map((h) =>
    el("li", {}, `${h.event} → ${h.targetUrl}${h.active ? "" : " (deleted)"}`)));
  const country = $("#f-country");
  const chosen = country.value;
  country.replaceChildren(el("option", { value: "" }, "any"), ...o.countries.map((c) => el("option", {}, c)));
  country.value = chosen;
  $("#cdrs tbody").replaceChildren(...o.cdrs.map((c) => el("tr", {},
    el("td", {}, c.id), el("td", {}, c.startTime), el("td", {}, c.dst), el("td", {}, c.country),
    el("td", {}, c.disposition), el("td", {}, String(c.billsec)), el("td", {}, `${c.sellPriceCents}¢`))));
  for (const c of o.calls) state.calls.set(c.callId, c);
  for (const d of o.deliveries) state.deliveries.set(d.id, d);
  renderCalls();
  renderDeliveries();
  charts(o.charts);
}

function renderCalls() {
  const rows = [...state.calls.values()].sort((x, y) => (y.createdAt || "").localeCompare(x.createdAt || "")).slice(0, 50);
  $("#calls tbody").replaceChildren(...rows.map((c) => el("tr", { "data-call": c.callId },
    el("td", {}, el("code", {}, c.callId.slice(0, 8))), el("td", {}, c.toNumber),
    el("td", {}, el("span", { class: `pill state-${c.state}` }, c.state)),
    el("td", {}, c.state === "ended" || c.state !== "queued" ? `${c.outcome} (${c.scenario})` : "…"),
    el("td", {}, c.updatedAt || ""))));
}

function renderDeliveries() {
  const rows = [...state.deliveries.values()].sort((x, y) => y.createdAt.localeCompare(x.createdAt)).slice(0, 50);
  $("#deliveries tbody").replaceChildren(...rows.map((d) => el("tr", { "data-delivery": d.id },
    el("td", {}, d.event), el("td", { class: `st-${d.status}` }, d.status),
    el("td", {}, d.attempts.map((t) => `#${t.number}: ${t.statusCode ?? t.error} · ${t.latencyMs} ms`).join("; ") || "—"),
    el("td", {}, d.nextAttemptAt || "—"), el("td", {}, d.targetUrl),
    el("td", {}, el("button", { type: "button", onclick: () => redeliver(d.id) }, "Redeliver")))));
}

function bars(target, series, keys, colors) {
  const w = 320, h = 120, n = Math.max(series.length, 30), bw = Math.max(2, Math.floor((w - 20) / n) - 2);
  const max = Math.max(1, ...series.map((s) => keys.reduce((t, k) => t + (s[k] || 0), 0)));
  const svg = [`<svg viewBox="0 0 ${w} ${h + 16}" width="100%" xmlns="http://www.w3.org/2000/svg">`];
  series.forEach((s, i) => {
    let y = h;
    keys.forEach((k, j) => {
      const v = s[k] || 0, bh = (v / max) * (h - 10);
      if (v) svg.push(`<rect x="${10 + i * (bw + 2)}" y="${y - bh}" width="${bw}" height="${bh}" fill="${colors[j]}"><title>${s.minute} ${k}: ${v}</title></rect>`);
      y -= bh;
    });
  });
  svg.push(`<text x="10" y="${h + 13}">${series.length ? series[0].minute.slice(11, 16) : "no data"}</text>`);
  svg.push(`<text x="${w - 10}" y="12" text-anchor="end">max ${max}</text></svg>`);
  target.innerHTML = svg.join("");
}

function charts(c) {
  bars($("#chart-calls"), c.callsPerMinute, ["ANSWERED", "NO ANSWER", "BUSY", "FAILED"],
    ["#3ddc84", "#ffcf5c", "#ff9f43", "#ff6b6b"]);
  bars($("#chart-spend"), c.spendPerMinute, ["cents"], ["#5cc8ff"]);
  const d = c.deliveries, total = (d.delivered || 0) + (d.failed || 0) + (d.pending || 0);
  $("#chart-deliveries").replaceChildren(
    el("p", {}, `${d.delivered || 0} delivered · ${d.pending || 0} pending · ${d.failed || 0} failed`),
    el("p", {}, total ? `success ${Math.round(100 * (d.delivered || 0) / total)} %` : "no deliveries yet"),
    el("p", {}, c.latencyP50 == null ? "latency —" : `latency p50 ${c.latencyP50} ms · p95 ${c.latencyP95} ms`));
}

function connect() {
  if (state.source) state.source.close();
  const src = new EventSource(`/_sandbox/stream/${state.customer}?token=${encodeURIComponent(state.admin)}`);
  state.source = src;
  src.addEventListener("hello", () => { $("#live").textContent = "live"; $("#live").classList.add("on"); });
  src.addEventListener("call", (e) => { const c = JSON.parse(e.data); state.calls.set(c.callId, c); renderCalls(); scheduleRefresh(); });
  src.addEventListener("delivery", (e) => { const d = JSON.parse(e.data); state.deliveries.set(d.id, d); renderDeliveries(); scheduleRefresh(); });
  src.onerror = () => { $("#live").textContent = "reconnecting"; $("#live").classList.remove("on"); };
}

let refreshTimer = null;
function scheduleRefresh() {  // balance, CDRs and charts follow the live events, debounced
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), 400);
}

async function redeliver(id) {
  await api("POST", `/_sandbox/deliveries/${id}/redeliver`);
}

function wire() {
  $("#login-form").addEventListener("submit", login);
  $("#account").addEventListener("change", (e) => pick(e.target.value));
  $("#ff").addEventListener("click", () => api("POST", "/_sandbox/clock/fast-forward"));
  $("#reset").addEventListener("click", async () => {
    if (!confirm("Reset the sandbox to its fixtures? Everything else is deleted.")) return;
    await api("POST", "/_sandbox/reset");
    await login();
  });
  $("#call-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      // The control plane's twin of POST /v1/calls: the admin token, no portal token minted.
      const r = await api("POST", `/_sandbox/accounts/${state.customer}/calls`,
        { aiAgentId: $("#call-agent").value, toNumber: $("#call-to").value });
      $("#call-result").textContent = `queued ${r.callId}`;
      state.calls.set(r.callId, { callId: r.callId, toNumber: $("#call-to").value, state: "queued", createdAt: new Date().toISOString() });
      renderCalls();
    } catch (err) { $("#call-result").textContent = err.message; }
  });
  $("#event-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const r = await api("POST", "/_sandbox/events", { customerId: state.customer, event: $("#event-type").value });
    $("#event-result").textContent = `fired ${r.eventId} → ${r.deliveries} deliveries`;
  });
  $("#scopes").replaceChildren(...SCOPES.map((s) => el("label", {}, el("input", { type: "checkbox", value: s }), " " + s)));
  $("#token-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const scopes = [...document.querySelectorAll("#scopes input:checked")].map((i) => i.value);
    const r = await api("POST", `/_sandbox/accounts/${state.customer}/tokens`, { scopes });
    $("#minted").textContent = r.token;
    scheduleRefresh();
  });
  $("#state-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    await api("PATCH", `/_sandbox/accounts/${state.customer}`, { balance: Number($("#set-balance").value) });
    await refresh();
  });
  document.querySelectorAll("[data-patch]").forEach((b) => b.addEventListener("click", async () => {
    await api("PATCH", `/_sandbox/accounts/${state.customer}`, JSON.parse(b.dataset.patch));
    await refresh();
  }));
  $("#cdr-filter").addEventListener("submit", (e) => { e.preventDefault(); refresh(); });
  if (state.admin) login();
}

wire();
