// The command-center page: logs in, draws the district as SVG from the GeoJSON, keeps the case queue, KPIs and
// fleet current from the live WebSocket (resuming with `since`), and falls back to polling the REST API.
import { applyStatic, getLang, setLang, t } from "./i18n.js";

const API = "/api/v1";
const POLL_MS = 1500; // fallback when the live stream is down: an alert must show within 2 s
const SLOW_POLL_MS = 5000; // KPIs and fleet
const COMMAND_ROLES = new Set(["shift_lead", "leader", "acceptor", "dispatcher", "office_lead", "area_lead", "admin"]);
const FLEET_ROLES = new Set(["admin", "maintainer"]);
const SILENCE_ROLES = new Set(["maintenance", "maintainer", "shift_lead", "leader", "dispatcher", "acceptor"]);
const OPEN_STATES = ["reported", "verifying", "accepted", "registered", "dispatched", "in_progress", "on_hold", "handled", "checking"];
// Mirrors cloud/incidents/loop.py so only plausible buttons show; the API stays the judge and its refusal is shown.
const RULES = [
  { kind: "accept", roles: ["acceptor", "shift_lead"], states: ["reported"] },
  { kind: "verify", roles: ["acceptor", "shift_lead"], states: ["reported"] },
  { kind: "verify", outcome: "pass", label: "a_verify_pass", roles: ["grid_worker", "area_lead"], states: ["verifying"] },
  { kind: "verify", outcome: "fail", label: "a_verify_fail", reason: true, roles: ["grid_worker", "area_lead"], states: ["verifying"] },
  { kind: "register", roles: ["shift_lead"], states: ["accepted"] },
  { kind: "dispatch", assignee: true, roles: ["dispatcher", "shift_lead"], states: ["registered"] },
  { kind: "sign", roles: ["assignee"], states: ["dispatched"] },
  { kind: "report_handled", roles: ["assignee"], states: ["in_progress"] },
  { kind: "return", reason: true, roles: ["assignee"], states: ["dispatched", "in_progress"] },
  { kind: "self_handle", roles: ["grid_worker"], states: ["reported", "accepted", "registered"] },
  { kind: "check", outcome: "pass", label: "a_check_pass", roles: ["grid_worker", "area_lead", "office_lead", "acceptor", "shift_lead"], states: ["handled"] },
  { kind: "check", outcome: "fail", label: "a_check_fail", reason: true, roles: ["grid_worker", "area_lead", "office_lead", "acceptor", "shift_lead"], states: ["handled"] },
  { kind: "close", roles: ["acceptor", "shift_lead"], states: ["checking"] },
  { kind: "rework", reason: true, roles: ["grid_worker", "area_lead", "acceptor", "shift_lead"], states: ["handled", "checking"] },
  { kind: "hold", reason: true, roles: ["shift_lead"], states: ["registered", "dispatched", "in_progress"] },
  { kind: "resume", roles: ["shift_lead"], states: ["on_hold"] },
  { kind: "extend", reason: true, extend: true, roles: ["dept_lead", "area_lead", "shift_lead"], states: ["dispatched", "in_progress"] },
  { kind: "supervise", roles: ["leader", "shift_lead"], states: OPEN_STATES },
  { kind: "cancel", reason: true, cancel: true, roles: ["acceptor", "shift_lead"], states: ["reported", "verifying", "accepted", "registered", "dispatched", "in_progress"] },
];
const OFFICE_FILLS = ["#1b2d40", "#22301f", "#32263a", "#2f2b1b", "#1b3436"];
const MAINTENANCE_ACTIONS = new Set(["dispatch", "sign", "return", "extend", "hold", "resume", "report_handled", "close", "cancel"]);
const ASSIGNEE_ROLES = { department: ["dept_lead", "dept_handler"], grid_team: ["grid_worker", "area_lead"], maintenance: ["maintenance", "maintainer"] };

const state = {
  token: sessionStorage.getItem("gw.token"),
  role: sessionStorage.getItem("gw.role"),
  username: sessionStorage.getItem("gw.user"),
  scope: sessionStorage.getItem("gw.scope") || "",
  seq: Number(sessionStorage.getItem("gw.seq") || 0),
  hub: sessionStorage.getItem("gw.hub") || "",
  cases: new Map(), // open cases by id
  territory: null, // {features, byCode, project}
  kpis: null,
  ranks: { office: {}, department: {} },
  fleet: null,
  devices: [],
  silences: [],
  queue: "all",
  selected: null,
  live: null,
  liveUp: false,
  timers: [],
  view: "overview",
};

// ---- small DOM helpers -------------------------------------------------------------------------------------------
const $ = (sel) => document.querySelector(sel);
const SVG_NS = "http://www.w3.org/2000/svg";

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function age(ms) {
  const m = Math.max(0, Math.round(ms / 60000));
  if (m < 60) return getLang() === "zh" ? `${m}分` : `${m}m`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return getLang() === "zh" ? `${hrs}小时${m % 60}分` : `${hrs}h${m % 60}m`;
  return getLang() === "zh" ? `${Math.floor(hrs / 24)}天` : `${Math.floor(hrs / 24)}d`;
}

function clockTime(ms) {
  return new Date(ms).toLocaleString(getLang() === "zh" ? "zh-CN" : "en-GB", { hour12: false });
}

function pct(x) {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`;
}

function duration(ms) {
  return ms === null || ms === undefined ? "—" : age(ms);
}

// ---- the API -----------------------------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail;
    const text = typeof detail === "string" ? detail : detail ? `${detail.reason}: ${detail.detail}` : `HTTP ${status}`;
    super(text);
    this.status = status;
    this.reason = detail && typeof detail === "object" ? detail.reason : null;
  }
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const resp = await fetch(API + path, { method: options.method || "GET", headers, body: options.body });
  if (resp.status === 401 && state.token) {
    logout();
    throw new ApiError(401, { detail: "session expired" });
  }
  const body = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (!resp.ok) throw new ApiError(resp.status, body);
  return body;
}

// ---- traffic light (cloud/incidents/clocks.py Clock.light) --------------------------------------------------------
function light(c, now = Date.now()) {
  if (!OPEN_STATES.includes(c.state)) return "none";
  // A live event carries the server's light but not every deadline: trust it until the next REST refresh.
  if (c._live && c.light) return c.light === "none" ? "green" : c.light;
  const at = c.hold_started_ms ?? now;
  const reds = [c.step_due_ms, c.due_ms];
  const yellows = [c.step_yellow_ms, c.yellow_ms];
  if (reds.some((x) => x !== null && x !== undefined && at >= x)) return "red";
  if (yellows.some((x) => x !== null && x !== undefined && at >= x)) return "yellow";
  return "green"; // a fresh sensor case with no clock yet is shown green
}

// ---- log in / out ------------------------------------------------------------------------------------------------
async function login(ev) {
  ev.preventDefault();
  const form = new URLSearchParams({ username: $("#username").value, password: $("#password").value });
  $("#login-error").textContent = "";
  try {
    const resp = await fetch(`${API}/auth/token`, { method: "POST", body: form });
    if (!resp.ok) throw new Error(t("login_failed"));
    const body = await resp.json();
    state.token = body.access_token;
    state.role = body.role;
    state.username = $("#username").value;
    state.scope = body.scope || "";
    state.seq = 0;
    state.hub = "";
    sessionStorage.setItem("gw.token", state.token);
    sessionStorage.setItem("gw.role", state.role);
    sessionStorage.setItem("gw.user", state.username);
    sessionStorage.setItem("gw.scope", state.scope);
    sessionStorage.setItem("gw.seq", "0");
    await start();
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
}

function logout() {
  for (const timer of state.timers) clearInterval(timer);
  state.timers = [];
  if (state.live) {
    state.live.onclose = null;
    state.live.close();
  }
  state.live = null;
  state.token = null;
  state.cases.clear();
  state.selected = null;
  for (const key of ["gw.token", "gw.role", "gw.user", "gw.scope", "gw.seq", "gw.hub"]) sessionStorage.removeItem(key);
  showLogin();
}

function showLogin() {
  $("#login").hidden = false;
  $("#app").hidden = true;
  $("#menu").hidden = true;
  $("#logout").hidden = true;
  $("#whoami").textContent = "";
  setLive("off");
}

function isCommand() {
  return COMMAND_ROLES.has(state.role);
}

async function start() {
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#menu").hidden = false;
  $("#logout").hidden = false;
  document.body.dataset.role = state.role;
  renderWho();
  for (const btn of document.querySelectorAll("#menu [data-roles]")) {
    const need = btn.dataset.roles;
    btn.hidden = need === "command" ? !isCommand() : !FLEET_ROLES.has(state.role);
  }
  try {
    await loadTerritory();
  } catch (err) {
    if (err.status === 401) return;
    throw err;
  }
  await Promise.allSettled([refreshCases(), refreshSlow()]);
  render();
  connectLive();
  let ticks = 0;
  // Poll while the live stream is down; with it up, re-read the full list now and then (lights move with time).
  state.timers.push(setInterval(() => (!state.liveUp || ++ticks % 20 === 0 ? refreshCases() : null), POLL_MS));
  state.timers.push(setInterval(refreshSlow, SLOW_POLL_MS));
  state.timers.push(setInterval(renderQueues, 30000)); // ages and lights move with time
}

function renderWho() {
  $("#whoami").textContent = state.username ? `${state.username} · ${t(`role_${state.role}`)}` : "";
}

// ---- data refresh --------------------------------------------------------------------------------------------------
async function refreshCases() {
  const body = await api("/incidents?open_only=true&limit=1000");
  state.cases = new Map(body.items.map((c) => [c.id, c]));
  renderCases();
}

async function refreshSlow() {
  const jobs = [refreshKpis()];
  if (FLEET_ROLES.has(state.role)) jobs.push(refreshFleet());
  if (SILENCE_ROLES.has(state.role)) jobs.push(refreshSilences());
  await Promise.allSettled(jobs);
}

async function refreshKpis() {
  const [district, office, department] = await Promise.all(
    ["district", "office", "department"].map((unit) => api(`/kpis?unit=${unit}`)),
  );
  state.kpis = sumKpis(Object.values(district.items));
  state.ranks = { office: office.items, department: department.items };
  renderKpis();
}

function sumKpis(rows) {
  const total = { reported: 0, registered: 0, closed: 0, handled: 0, handled_on_time: 0, reworked: 0, due: 0 };
  for (const r of rows) for (const k of Object.keys(total)) total[k] += r[k] || 0;
  total.closure_rate = total.due ? total.closed / total.due : null;
  total.on_time_handling_rate = total.handled ? total.handled_on_time / total.handled : null;
  total.rework_rate = total.handled ? total.reworked / total.handled : null;
  const first = rows.length === 1 ? rows[0] : null;
  total.mtta_ms = first ? first.mtta_ms : null;
  total.mttr_ms = first ? first.mttr_ms : null;
  return total;
}

async function refreshFleet() {
  const [fleet, devices] = await Promise.all([api("/fleet"), api("/devices")]);
  state.fleet = fleet;
  state.devices = devices;
  renderFleet();
  renderMapDynamic();
}

async function refreshSilences() {
  state.silences = await api("/silences");
  renderMapDynamic();
}

// ---- live stream ---------------------------------------------------------------------------------------------------
let backoff = 500;

function setLive(mode) {
  const el = $("#live-status");
  el.dataset.mode = mode;
  el.className = `live ${mode}`;
  el.textContent = mode === "live" ? `● ${t("live")}` : mode === "polling" ? `○ ${t("polling")}` : "";
}

function connectLive() {
  if (!state.token) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const resume = state.hub ? `&since=${state.seq}&hub=${encodeURIComponent(state.hub)}` : "";
  const url = `${proto}//${location.host}${API}/live?token=${encodeURIComponent(state.token)}${resume}`;
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    scheduleReconnect();
    return;
  }
  state.live = ws;
  setLive("polling");
  ws.onopen = () => {
    state.liveUp = true;
    backoff = 500;
    setLive("live");
    refreshCases(); // anything that happened while the socket was down and before `since` was known
  };
  ws.onmessage = (ev) => onLive(ev.data);
  ws.onclose = () => {
    state.liveUp = false;
    state.live = null;
    setLive("polling");
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (!state.token) return;
  setTimeout(connectLive, backoff);
  backoff = Math.min(backoff * 2, 15000);
}

let pendingRefresh = null;

function debounced(fn) {
  clearTimeout(pendingRefresh);
  pendingRefresh = setTimeout(fn, 150);
}

function onLive(raw) {
  let msg;
  try {
    msg = JSON.parse(raw);
  } catch {
    return;
  }
  for (const m of Array.isArray(msg) ? msg : [msg]) applyLive(m);
}

function applyLive(m) {
  if (typeof m.seq === "number" && m.seq > state.seq) {
    state.seq = m.seq;
    sessionStorage.setItem("gw.seq", String(state.seq));
  }
  const data = m.data || {};
  if (m.type === "hello") {
    if (data.hub && data.hub !== state.hub) {
      // another hub (a restarted server) numbers its events anew: resume points from the old one mean nothing
      state.hub = data.hub;
      sessionStorage.setItem("gw.hub", data.hub);
      debounced(() => Promise.allSettled([refreshCases(), refreshKpis()]));
    }
    state.seq = typeof data.seq === "number" ? data.seq : state.seq;
    sessionStorage.setItem("gw.seq", String(state.seq));
    return;
  }
  if (m.type === "case" && data.id !== undefined && data.state) {
    if (OPEN_STATES.includes(data.state)) state.cases.set(data.id, { ...(state.cases.get(data.id) || {}), ...data, _live: true });
    else state.cases.delete(data.id);
    renderCases();
    if (state.selected === data.id) openDetail(data.id);
    debounced(refreshKpis);
  } else if (m.type === "fleet") {
    if (FLEET_ROLES.has(state.role)) debounced(refreshFleet);
  } else {
    // an alert may have opened or grown a case; a resync means we missed too much: reload from REST
    debounced(() => Promise.allSettled([refreshCases(), refreshKpis()]));
  }
}

// ---- rendering -----------------------------------------------------------------------------------------------------
function render() {
  applyStatic();
  $("#lang-toggle").textContent = getLang() === "zh" ? "English" : "中文";
  renderWho();
  setLive($("#live-status").dataset.mode);
  renderMap();
  renderCases();
  renderKpis();
  renderFleet();
  if (state.selected !== null) openDetail(state.selected);
}

function renderCases() {
  renderQueues();
  renderMapDynamic();
}

function queueCases() {
  const all = [...state.cases.values()];
  if (state.queue === "red") return all.filter((c) => light(c) === "red");
  if (state.queue === "supervised") return all.filter((c) => c.supervised > 0);
  if (state.queue === "all") return all;
  return all.filter((c) => c.state === state.queue);
}

function renderQueues() {
  const now = Date.now();
  const all = [...state.cases.values()];
  const box = $("#queues");
  box.replaceChildren();
  const tab = (key, label, cases) => {
    const oldest = cases.length ? Math.min(...cases.map((c) => c.reported_ms)) : null;
    return h(
      "button",
      { class: `qbtn${state.queue === key ? " active" : ""}`, "data-queue": key, "data-count": cases.length, onclick: () => selectQueue(key) },
      h("b", { text: label }),
      h("span", { class: "count", text: String(cases.length) }),
      oldest === null ? null : h("small", { text: `${t("oldest")} ${age(now - oldest)}` }),
    );
  };
  box.append(tab("all", t("all"), all));
  for (const st of OPEN_STATES) {
    const cases = all.filter((c) => c.state === st);
    if (cases.length) box.append(tab(st, t(st), cases));
  }
  const reds = all.filter((c) => light(c) === "red");
  const sups = all.filter((c) => c.supervised > 0);
  const red = $("#queue-red");
  red.replaceChildren(h("b", { text: t("red_queue") }), h("span", { class: "count", text: String(reds.length) }));
  red.dataset.count = reds.length;
  red.classList.toggle("active", state.queue === "red");
  red.onclick = () => selectQueue("red");
  const sup = $("#queue-supervised");
  sup.replaceChildren(h("b", { text: t("supervised_queue") }), h("span", { class: "count", text: String(sups.length) }));
  sup.dataset.count = sups.length;
  sup.classList.toggle("active", state.queue === "supervised");
  sup.onclick = () => selectQueue("supervised");

  const list = $("#case-list");
  list.replaceChildren();
  const rows = queueCases().sort((a, b) => b.priority - a.priority || a.reported_ms - b.reported_ms);
  for (const c of rows) {
    const lt = light(c);
    list.append(
      h(
        "li",
        {
          class: `case-row light-${lt}${state.selected === c.id ? " selected" : ""}`,
          "data-case-id": c.id,
          "data-state": c.state,
          "data-light": lt,
          onclick: () => openDetail(c.id),
        },
        h("span", { class: `dot ${lt}`, title: t(lt) }),
        h("span", { class: "cid", text: `#${c.id}` }),
        h("span", { class: "ctitle", text: c.title || c.category }),
        h("span", { class: "cstate", text: t(c.state) }),
        c.supervised > 0 ? h("span", { class: "sup-tag", text: t("a_supervise") }) : null,
        h("span", { class: "cage", text: age(now - c.reported_ms) }),
      ),
    );
  }
  if (!rows.length) list.append(h("li", { class: "empty", text: t("none") }));
}

function selectQueue(key) {
  state.queue = key;
  renderQueues();
}

// ---- the map -------------------------------------------------------------------------------------------------------
const TILE = 256;
const MAX_TILES = 64;
// Web Mercator in z0 world pixels (0..256), so that XYZ tiles line up with the polygons.
const mercX = (lon) => ((lon + 180) / 360) * TILE;
const mercY = (lat) => {
  const r = (lat * Math.PI) / 180;
  return ((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * TILE;
};

async function loadTerritory() {
  if (state.territory) return;
  const [geo, mapCfg] = await Promise.all([api("/grids"), api("/map").catch(() => ({ tile_url: null }))]);
  const district = geo.features.find((f) => f.properties.level === "district") || geo.features[0];
  let [minX, minY, maxX, maxY] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of geo.features) {
    for (const [x, y] of rings(f.geometry).flat()) {
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
    }
  }
  const width = 1000;
  const [x0, y0] = [mercX(minX), mercY(maxY)];
  const scale = width / (mercX(maxX) - x0);
  const height = (mercY(minY) - y0) * scale;
  const project = (lon, lat) => [(mercX(lon) - x0) * scale, (mercY(lat) - y0) * scale];
  const byCode = new Map(geo.features.map((f) => [f.properties.code, f]));
  state.territory = { features: geo.features, district, byCode, project, width, height, x0, y0, scale, map: mapCfg };
}

// The part of the map the caller works in: a grid worker's grid, a lead's area or office; else the district.
function scopeFeature() {
  const terr = state.territory;
  const f = state.scope && terr.byCode.get(state.scope);
  return f && f.properties.level !== "district" ? f : null;
}

function viewBoxOf(feature) {
  const terr = state.territory;
  if (!feature) return [-10, -10, terr.width + 20, terr.height + 20];
  const pts = rings(feature.geometry).flat().map(([lon, lat]) => terr.project(lon, lat));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  const [x, y] = [Math.min(...xs), Math.min(...ys)];
  const [w, h] = [Math.max(...xs) - x, Math.max(...ys) - y];
  const pad = Math.max(w, h) * 0.25 + 5; // some neighbourhood around the unit, for orientation
  return [x - pad, y - pad, w + 2 * pad, h + 2 * pad];
}

// XYZ tiles under the polygons, at the zoom whose pixels match the map's on-screen size.
function tileImages(view) {
  const terr = state.territory;
  const url = terr.map && terr.map.tile_url;
  if (!url) return [];
  const [vx, vy, vw, vh] = view;
  const screen = $("#map").clientWidth || 1000;
  const worldW = vw / terr.scale; // z0 world pixels across the view
  let z = Math.max(0, Math.min(terr.map.tile_max_zoom ?? 18, Math.round(Math.log2((screen / worldW) || 1))));
  const span = (zz) => {
    const n = 2 ** zz;
    const tx = [Math.floor(((terr.x0 + vx / terr.scale) * n) / TILE), Math.floor(((terr.x0 + (vx + vw) / terr.scale) * n) / TILE)];
    const ty = [Math.floor(((terr.y0 + vy / terr.scale) * n) / TILE), Math.floor(((terr.y0 + (vy + vh) / terr.scale) * n) / TILE)];
    return { n, tx, ty, count: (tx[1] - tx[0] + 1) * (ty[1] - ty[0] + 1) };
  };
  let sp = span(z);
  while (sp.count > MAX_TILES && z > 0) sp = span(--z);
  const size = (TILE / sp.n) * terr.scale;
  const images = [];
  for (let tx = sp.tx[0]; tx <= sp.tx[1]; tx++) {
    for (let ty = sp.ty[0]; ty <= sp.ty[1]; ty++) {
      if (ty < 0 || ty >= sp.n) continue;
      const href = url.replace("{z}", z).replace("{x}", ((tx % sp.n) + sp.n) % sp.n).replace("{y}", ty);
      const x = ((tx * TILE) / sp.n - terr.x0) * terr.scale;
      const y = ((ty * TILE) / sp.n - terr.y0) * terr.scale;
      images.push(s("image", { href, x: x.toFixed(2), y: y.toFixed(2), width: size.toFixed(2), height: size.toFixed(2), class: "basemap-tile", "data-z": z }));
    }
  }
  return images;
}

function rings(geometry) {
  if (geometry.type === "Polygon") return geometry.coordinates;
  if (geometry.type === "MultiPolygon") return geometry.coordinates.flat();
  return [];
}

function pathOf(geometry) {
  const { project } = state.territory;
  return rings(geometry)
    .map((ring) => "M" + ring.map(([x, y]) => project(x, y).map((v) => v.toFixed(1)).join(",")).join("L") + "Z")
    .join("");
}

function centroid(feature) {
  const ring = rings(feature.geometry)[0] || [];
  let [x, y] = [0, 0];
  for (const [a, b] of ring) {
    x += a;
    y += b;
  }
  return ring.length ? [x / ring.length, y / ring.length] : null;
}

function renderMap() {
  const terr = state.territory;
  const svg = $("#map");
  if (!terr) return;
  const scope = scopeFeature();
  const view = viewBoxOf(scope);
  svg.setAttribute("viewBox", view.map((v) => v.toFixed(1)).join(" "));
  svg.dataset.zoom = scope ? scope.properties.code : "district";
  terr.unit = view[2] / (terr.width + 20); // pins and labels keep their on-screen size when zoomed in
  const tiles = tileImages(view);
  svg.classList.toggle("with-tiles", tiles.length > 0);
  const name = (f) => (getLang() === "zh" ? f.properties.name : f.properties.name_en || f.properties.name);
  const layer = (level, cls) =>
    s(
      "g",
      { id: `layer-${level}-g`, class: `layer ${cls}` },
      terr.features
        .filter((f) => f.properties.level === level)
        .map((f, i) =>
          s(
            "path",
            { d: pathOf(f.geometry), class: `geo ${level}`, "data-code": f.properties.code, style: level === "office" ? `fill: ${OFFICE_FILLS[i % OFFICE_FILLS.length]}` : null },
            s("title", { text: `${name(f)} ${f.properties.code}` }),
          ),
        ),
    );
  const labels = s(
    "g",
    { class: "labels" },
    terr.features
      .filter((f) => f.properties.level === "office")
      .map((f) => {
        const c = centroid(f);
        const [x, y] = terr.project(c[0], c[1]);
        return s("text", { x, y, class: "office-label", "font-size": (16 * terr.unit).toFixed(2), text: name(f) });
      }),
  );
  svg.replaceChildren(
    s(
      "defs",
      {},
      s(
        "pattern",
        { id: "map-hatch", patternUnits: "userSpaceOnUse", width: 10, height: 10, patternTransform: "rotate(45)" },
        s("line", { x1: 0, y1: 0, x2: 0, y2: 10, stroke: "#7a6cbf", "stroke-width": 4 }),
      ),
    ),
    s("g", { id: "tiles" }, tiles),
    layer("office", "offices"),
    layer("grid", "grids"),
    layer("area", "areas"),
    scope ? s("path", { d: pathOf(scope.geometry), class: "scope-outline", "data-code": scope.properties.code }) : s("g"),
    s("g", { id: "silences" }),
    labels,
    s("g", { id: "device-layer" }),
    s("g", { id: "pins" }),
  );
  $("#map-attribution").textContent = tiles.length ? terr.map.tile_attribution || "" : "";
  applyLayerToggles();
  renderMapDynamic();
}

function applyLayerToggles() {
  for (const level of ["office", "area", "grid"]) {
    const g = document.getElementById(`layer-${level}-g`);
    if (g) g.style.display = $(`#layer-${level}`).checked ? "" : "none";
  }
  const dev = document.getElementById("device-layer");
  if (dev) dev.style.display = $("#layer-device").checked ? "" : "none";
}

function placeOf(c) {
  const terr = state.territory;
  if (c.lat !== null && c.lat !== undefined && c.lon !== null && c.lon !== undefined) return terr.project(c.lon, c.lat);
  const f = terr.byCode.get(c.grid) || terr.byCode.get(c.area) || terr.byCode.get(c.office);
  if (!f) return null;
  const [lon, lat] = centroid(f);
  return terr.project(lon, lat);
}

function renderMapDynamic() {
  const terr = state.territory;
  const pins = document.getElementById("pins");
  if (!terr || !pins) return;
  pins.replaceChildren();
  for (const c of state.cases.values()) {
    const at = placeOf(c);
    if (!at) continue;
    const lt = light(c);
    pins.append(
      s(
        "circle",
        {
          cx: at[0].toFixed(1),
          cy: at[1].toFixed(1),
          r: ((state.selected === c.id ? 11 : 8) * (terr.unit || 1)).toFixed(2),
          class: `pin ${lt}${state.selected === c.id ? " selected" : ""}`,
          "data-case-id": c.id,
          "data-light": lt,
          onclick: () => openDetail(c.id),
        },
        s("title", { text: `#${c.id} ${c.title || c.category} · ${t(c.state)} · ${t(lt)}` }),
      ),
    );
  }
  const sil = document.getElementById("silences");
  sil.replaceChildren();
  for (const x of state.silences) {
    const code = x.matchers && x.matchers.grid;
    const f = code && terr.byCode.get(code);
    if (f) sil.append(s("path", { d: pathOf(f.geometry), class: "silenced", "data-code": code }, s("title", { text: `${t("silenced")}: ${x.reason}` })));
  }
  const dev = document.getElementById("device-layer");
  dev.replaceChildren();
  const links = new Map((state.fleet || []).map((g) => [g.gateway, g]));
  const alarming = new Set([...state.cases.values()].map((c) => c.device).filter(Boolean));
  for (const d of state.devices) {
    if (d.lat === null || d.lat === undefined) continue;
    const [x, y] = terr.project(d.lon, d.lat);
    const gw = links.get(d.gateway);
    const stale = gw && gw.stale_devices.includes(d.device);
    const status = alarming.has(d.device) ? "alarming" : gw && gw.link === "online" && !stale ? "online" : "offline";
    const half = 4 * (terr.unit || 1);
    dev.append(s("rect", { x: x - half, y: y - half, width: 2 * half, height: 2 * half, class: `device ${status}`, "data-device": d.device }, s("title", { text: `${d.device} · ${status}` })));
  }
}

// ---- case detail ---------------------------------------------------------------------------------------------------
async function openDetail(id) {
  state.selected = id;
  renderQueues();
  renderMapDynamic();
  const panel = $("#detail");
  let body;
  try {
    body = await api(`/incidents/${id}`);
  } catch (err) {
    panel.hidden = false;
    panel.replaceChildren(h("p", { class: "error", text: err.message }));
    return;
  }
  if (state.selected !== id) return;
  const c = body.case;
  if (OPEN_STATES.includes(c.state)) state.cases.set(c.id, c);
  panel.hidden = false;
  panel.dataset.caseId = c.id;
  panel.dataset.state = c.state;
  const evidence = body.audit.flatMap((e) => e.evidence.map((x) => `${x} (${e.actor})`));
  const alerts = body.alerts.map((a) => `${a.rule} ${a.device}: ${a.value ?? "—"}${a.threshold !== null ? ` / ${a.threshold}` : ""} · ${a.state}`);
  panel.replaceChildren(
    h(
      "div",
      { class: "panel-head" },
      h("span", { class: `dot ${body.light}` }),
      h("h2", { text: `#${c.id} ${c.title || c.category}` }),
      h("span", { id: "detail-state", class: "badge", text: t(c.state) }),
      h("span", { class: "spacer" }),
      h("button", { id: "detail-close", onclick: closeDetail, text: t("close_detail") }),
    ),
    h(
      "p",
      { class: "meta" },
      `${c.category} · ${c.urgency} · ${t("grid")} ${c.grid ?? "—"} · ${c.device ?? ""} · ${t("reported")} ${clockTime(c.reported_ms)}` +
        (c.assignee_code ? ` · → ${t(c.assignee_kind)} ${c.assignee_code}` : ""),
    ),
    h("h3", { text: t("series") }),
    h("div", { id: "sparkline" }),
    h("h3", { text: t("actions") }),
    actionBox(c),
    h("h3", { text: t("evidence") }),
    h("ul", { class: "evidence" }, [...alerts, ...evidence].map((x) => h("li", { text: x }))),
    h("h3", { text: t("timeline") }),
    h(
      "ol",
      { id: "timeline" },
      body.audit.map((e) =>
        h(
          "li",
          { "data-action": e.action },
          h("time", { text: clockTime(e.at_ms) }),
          h("b", { text: t(`a_${e.action}`) }),
          h("span", { text: ` ${e.actor} (${t(`role_${e.role}`)}) ${t(e.from_state)} → ${t(e.to_state)}` }),
          e.reason ? h("q", { text: e.reason }) : null,
        ),
      ),
    ),
  );
  sparkline(body.alerts[0]);
}

function closeDetail() {
  state.selected = null;
  $("#detail").hidden = true;
  renderQueues();
  renderMapDynamic();
}

function mayDo(rule, c) {
  if (!rule.states.includes(c.state)) return false;
  if (c.kind === "maintenance") return (state.role === "maintenance" || state.role === "maintainer") && MAINTENANCE_ACTIONS.has(rule.kind) && !rule.outcome;
  if (rule.roles.includes("assignee")) return (ASSIGNEE_ROLES[c.assignee_kind] || []).includes(state.role);
  return rule.roles.includes(state.role);
}

function actionBox(c) {
  const rules = RULES.filter((r) => mayDo(r, c));
  if (!rules.length) return h("p", { class: "muted", id: "actions", text: t("no_actions") });
  const needsAssignee = rules.some((r) => r.assignee);
  return h(
    "div",
    { id: "actions" },
    h("input", { id: "action-reason", placeholder: t("reason") }),
    needsAssignee
      ? h(
          "span",
          {},
          h("select", { id: "assignee-kind" }, ["department", "grid_team", "maintenance"].map((k) => h("option", { value: k, text: t(k) }))),
          h("input", { id: "assignee-code", placeholder: t("assignee_code"), value: c.grid || "" }),
        )
      : null,
    h(
      "div",
      { class: "buttons" },
      rules.map((r) =>
        h("button", {
          class: `act act-${r.kind}`,
          "data-action": r.kind,
          "data-outcome": r.outcome || "",
          text: t(r.label || `a_${r.kind}`),
          onclick: () => doAction(c.id, r),
        }),
      ),
    ),
    h("p", { id: "action-error", class: "error", role: "alert" }),
  );
}

async function doAction(id, rule) {
  const reason = ($("#action-reason") || {}).value || "";
  const body = { kind: rule.kind, reason };
  if (rule.outcome) body.outcome = rule.outcome;
  if (rule.assignee) body.assignee = { kind: $("#assignee-kind").value, code: $("#assignee-code").value };
  if (rule.cancel) body.cancel_reason = "false_alarm";
  if (rule.extend) body.extend_ms = 24 * 3600 * 1000;
  try {
    const c = await api(`/incidents/${id}/actions`, { method: "POST", json: body });
    if (OPEN_STATES.includes(c.state)) state.cases.set(c.id, c);
    else state.cases.delete(c.id);
    renderCases();
    await openDetail(id);
    refreshKpis();
  } catch (err) {
    const box = $("#action-error");
    if (box) {
      box.textContent = `${t("refused")}: ${err.message}`;
      box.dataset.reason = err.reason || "";
    }
  }
}

async function sparkline(alert) {
  const box = $("#sparkline");
  if (!alert || !alert.quantity) {
    box.textContent = t("no_series");
    return;
  }
  const start = alert.ts_ms - 30 * 60000;
  const end = Math.min(Date.now(), alert.ts_ms + 30 * 60000) + 1;
  let points;
  try {
    const q = new URLSearchParams({ device: alert.device, quantity: alert.quantity, start_ms: start, end_ms: end, step_ms: 60000 });
    points = (await api(`/series?${q}`)).points;
  } catch {
    points = [];
  }
  const values = points.map((p) => [p.ts_ms, p.mean ?? p.value]).filter(([, v]) => typeof v === "number");
  if (!values.length || !box.isConnected) {
    box.textContent = t("no_series");
    return;
  }
  const [W, H] = [360, 70];
  const vs = values.map(([, v]) => v).concat(alert.threshold ?? []);
  const [lo, hi] = [Math.min(...vs), Math.max(...vs)];
  const x = (ts) => ((ts - start) / (end - start)) * W;
  const y = (v) => H - 4 - ((v - lo) / (hi - lo || 1)) * (H - 8);
  const line = values.map(([ts, v]) => `${x(ts).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  box.replaceChildren(
    s(
      "svg",
      { class: "spark", viewBox: `0 0 ${W} ${H}`, width: W, height: H, "data-points": values.length },
      alert.threshold !== null && alert.threshold !== undefined
        ? s("line", { x1: 0, x2: W, y1: y(alert.threshold), y2: y(alert.threshold), class: "threshold" })
        : null,
      s("line", { x1: x(alert.ts_ms), x2: x(alert.ts_ms), y1: 0, y2: H, class: "alert-at" }),
      s("polyline", { points: line, class: "series" }),
    ),
    h("small", { text: ` ${alert.quantity} ${lo.toFixed(1)}–${hi.toFixed(1)}` }),
  );
}

// ---- KPIs and fleet ------------------------------------------------------------------------------------------------
function renderKpis() {
  const box = $("#kpi-tiles");
  const k = state.kpis;
  if (!k) return;
  const tile = (key, value) => h("div", { class: "tile", "data-kpi": key }, h("span", { text: t(`k_${key}`) }), h("b", { text: value }));
  box.replaceChildren(
    tile("reported", String(k.reported)),
    tile("closed", String(k.closed)),
    tile("closure_rate", pct(k.closure_rate)),
    tile("on_time_handling_rate", pct(k.on_time_handling_rate)),
    tile("rework_rate", pct(k.rework_rate)),
    tile("mttr", duration(k.mttr_ms)),
  );
  const names = state.territory ? state.territory.byCode : new Map();
  const label = (code) => {
    const f = names.get(code);
    return f ? (getLang() === "zh" ? f.properties.name : f.properties.name_en) : code;
  };
  rankTable($("#rank-office"), state.ranks.office, label);
  rankTable($("#rank-department"), state.ranks.department, (code) => code);
}

function rankTable(table, items, label) {
  const rows = Object.entries(items).sort(
    ([, a], [, b]) => (b.on_time_closure_rate ?? -1) - (a.on_time_closure_rate ?? -1) || b.closed - a.closed,
  );
  table.replaceChildren(
    h("tr", {}, ["#", t("unit"), t("k_reported"), t("k_closed"), t("k_closure_rate"), t("k_on_time_handling_rate"), t("k_rework_rate")].map((x) => h("th", { text: x }))),
    ...rows.map(([code, r], i) =>
      h(
        "tr",
        { "data-unit": code },
        [String(i + 1), label(code), String(r.reported), String(r.closed), pct(r.closure_rate), pct(r.on_time_handling_rate), pct(r.rework_rate)].map((x) => h("td", { text: x })),
      ),
    ),
  );
}

function renderFleet() {
  const rows = state.fleet;
  if (!rows) return;
  const online = rows.filter((g) => g.link === "online").length;
  const autonomy = rows.map((g) => g.autonomy_h).filter((x) => typeof x === "number");
  const tile = (key, value) => h("div", { class: "tile", "data-kpi": key }, h("span", { text: t(`k_${key}`) }), h("b", { text: value }));
  $("#fleet-tiles").replaceChildren(
    tile("gateways", String(rows.length)),
    tile("online_rate", rows.length ? pct(online / rows.length) : "—"),
    tile("autonomy", autonomy.length ? `${Math.min(...autonomy).toFixed(1)} h` : "—"),
  );
  $("#fleet-table").replaceChildren(
    h("tr", {}, [t("gateway"), t("link"), t("devices"), t("buffer"), t("autonomy"), t("last_seen")].map((x) => h("th", { text: x }))),
    ...rows.map((g) =>
      h(
        "tr",
        { "data-gateway": g.gateway, class: `link-${g.link}` },
        [g.name || g.gateway, g.link, String(g.devices), String(g.buffer_items ?? "—"), g.autonomy_h === null ? "—" : g.autonomy_h.toFixed(1), g.last_seen_ms ? clockTime(g.last_seen_ms) : "—"].map((x) => h("td", { text: x })),
      ),
    ),
  );
}

// ---- wiring --------------------------------------------------------------------------------------------------------
function showView(view) {
  state.view = view;
  for (const btn of document.querySelectorAll("#menu .tab")) btn.classList.toggle("active", btn.dataset.view === view);
  for (const sec of document.querySelectorAll("main .view")) sec.hidden = sec.id !== `view-${view}`;
}

function init() {
  setLang(getLang());
  applyStatic();
  $("#lang-toggle").textContent = getLang() === "zh" ? "English" : "中文";
  $("#lang-toggle").addEventListener("click", () => {
    setLang(getLang() === "zh" ? "en" : "zh");
    render();
  });
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  for (const btn of document.querySelectorAll("#menu .tab")) btn.addEventListener("click", () => showView(btn.dataset.view));
  for (const id of ["layer-office", "layer-area", "layer-grid", "layer-device"]) $(`#${id}`).addEventListener("change", applyLayerToggles);
  if (state.token) start().catch(() => logout());
  else showLogin();
}

// For the browser tests and the console: drop the live socket as a network fault would.
window.gridwatch = { state, dropLive: () => state.live && state.live.close() };

init();
