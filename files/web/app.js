// tengen's web client: one page, no build step. Moves go over HTTP; every change comes back
// over the game's WebSocket, so the board only ever shows what the server holds.
"use strict";

const COLUMNS = "ABCDEFGHJKLMNOPQRST";
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);
let current = null; // {id, token, game}
let socket = null;
let retry = 0;
let maintenance = null; // {reason, retry_after} while the service refuses changes

function vertex(x, y, size) { return COLUMNS[x] + (size - y); }
function point(v, size) { return [COLUMNS.indexOf(v[0]), size - parseInt(v.slice(1), 10)]; }

async function api(path, body) {
  const response = await fetch("/api" + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function say(text) { $("message").textContent = text || ""; }

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function stars(size) {
  const edge = size < 13 ? 2 : 3;
  const far = size - 1 - edge;
  const mid = (size - 1) / 2;
  return size === 19
    ? [edge, mid, far].flatMap((x) => [edge, mid, far].map((y) => [x, y]))
    : [[edge, edge], [edge, far], [far, edge], [far, far], [mid, mid]];
}

function render(game) {
  const size = game.size;
  const svg = $("board");
  svg.replaceChildren();
  svg.setAttribute("viewBox", `-1 -1 ${size + 1} ${size + 1}`);
  el("rect", { class: "wood", x: -1, y: -1, width: size + 1, height: size + 1 }, svg);
  for (let i = 0; i < size; i++) {
    el("line", { x1: 0, y1: i, x2: size - 1, y2: i }, svg);
    el("line", { x1: i, y1: 0, x2: i, y2: size - 1 }, svg);
  }
  for (const [x, y] of stars(size)) el("circle", { class: "star", cx: x, cy: y, r: 0.09 }, svg);
  const dead = new Set(game.dead || []);
  game.board.forEach((row, y) => [...row].forEach((c, x) => {
    if (c === ".") return;
    const isDead = dead.has(vertex(x, y, size));
    el("circle", { class: isDead ? `${c} dead` : c, cx: x, cy: y, r: 0.47 }, svg);
    if (isDead) {
      // A cross over the stone: it is counted for the other side.
      el("path", { class: "dead-mark", d: `M${x - 0.22} ${y - 0.22}L${x + 0.22} ${y + 0.22}M${x + 0.22} ${y - 0.22}L${x - 0.22} ${y + 0.22}` }, svg);
    }
  }));
  const last = game.moves.length ? game.moves[game.moves.length - 1][1] : null;
  if (last && last !== "pass" && last !== "resign") {
    const [x, y] = point(last, size);
    el("circle", { class: "last", cx: x, cy: y, r: 0.2 }, svg);
  }
  const mine = myColor(game);
  const myTurn = game.status === "active" && game.to_play === mine;
  if (myTurn && !maintenance) {
    game.board.forEach((row, y) => [...row].forEach((c, x) => {
      if (c !== ".") return;
      const hit = el("rect", { class: "hit", x: x - 0.5, y: y - 0.5, width: 1, height: 1 }, svg);
      hit.addEventListener("click", () => act(`/games/${game.id}/moves`, { move: vertex(x, y, size) }));
    }));
  }
  const name = { B: "Black", W: "White" };
  $("turn").textContent = game.status === "finished"
    ? `Game over: ${game.result}` + (game.score ? ` (B ${game.score.black}, W ${game.score.white})` : "")
    : (myTurn ? "Your move" : `${name[game.to_play]} to play`) + ` · you are ${name[mine]}`;
  $("captures").textContent = `captures B ${game.captures.B} · W ${game.captures.W}`;
  $("pass").disabled = $("resign").disabled = !myTurn || Boolean(maintenance);
  $("sgf").href = `/api/games/${game.id}/sgf`;
  $("level").textContent = game.level ? `AI level: ${game.level}` : "";
  renderAnalysis(game);
  renderFinal(game);
}

const COLOR_NAMES = { B: "Black", W: "White" };

// The engine's view of the position: Black's share of the bar is Black's chance to win.
function renderAnalysis(game) {
  const box = $("analysis");
  const toggle = $("analysis-toggle");
  toggle.hidden = game.opponent !== "ai" || game.status !== "active";
  toggle.textContent = game.analysis ? "Analysis off" : "Analysis on";
  toggle.disabled = Boolean(maintenance);
  if (!game.analysis || game.status !== "active") {
    box.hidden = true;
    current.evaluation = null;
    return;
  }
  if (game.evaluation) current.evaluation = game.evaluation;
  const shown = current.evaluation;
  box.hidden = !shown;
  box.classList.toggle("stale", !game.evaluation); // the last move's evaluation is on its way
  if (!shown) return;
  const black = Math.round(shown.black_win_rate * 100);
  const lead = shown.black_score_lead;
  $("analysis-black").style.width = `${black}%`;
  $("analysis-bar").setAttribute("aria-valuenow", String(black));
  const leader = lead >= 0 ? "B" : "W";
  $("analysis-text").textContent = `Black ${black}% · White ${100 - black}% · ${COLOR_NAMES[leader]} leads by ${Math.abs(lead).toFixed(1)}`;
}

// The end of a game by two passes: the dead stones as the engine judged them, and the count.
function renderFinal(game) {
  const box = $("final");
  box.hidden = !game.score;
  $("accept").hidden = true;
  if (!game.score) return;
  if (game.dead === null || game.dead === undefined) {
    box.textContent = "Counting: the engine is judging the dead stones…";
    box.dataset.state = "pending";
    return;
  }
  const dead = game.dead.length ? `dead stones ${game.dead.join(", ")}` : "no dead stones";
  const accepted = game.accepted || [];
  const by = accepted.length ? ` · accepted by ${accepted.map((c) => COLOR_NAMES[c]).join(" and ")}` : "";
  box.textContent = `Final score: Black ${game.score.black}, White ${game.score.white} (komi ${game.komi} included) · ${dead}${by} · ${game.result}`;
  box.dataset.state = "final";
  const mine = current.colors ? Object.keys(current.tokens) : [current.color];
  $("accept").hidden = mine.every((c) => accepted.includes(c));
  $("accept").disabled = Boolean(maintenance);
}

// Every path that renders goes through here. The HTTP answer to a move can arrive after the
// WebSocket has delivered a newer state (the AI's reply): an older version is never shown.
function show(game) {
  const known = current.game && current.game.id === game.id ? current.game : null;
  if (known && game.version < known.version) return;
  // The engine's evaluation comes after the move, at the same version: a late HTTP answer
  // without it does not take it away.
  if (known && game.version === known.version && !game.evaluation) game.evaluation = known.evaluation;
  render(current.game = game);
}

function myColor(game) {
  if (current.colors) return game.to_play || "B"; // both seats on this page
  return current.color;
}

async function act(path, body) {
  say("");
  try {
    const token = current.tokens[myColor(current.game)];
    show(await api(path, { ...body, token }));
  } catch (error) {
    say(error.message);
  }
}

// The server is read-only for a while: the board stays live, the move controls wait.
function setMaintenance(notice) {
  maintenance = notice;
  document.body.classList.toggle("maintenance", Boolean(notice));
  $("new-game").querySelector("button[type=submit]").disabled = Boolean(notice);
  say(notice
    ? `Maintenance: ${notice.reason}. Your game is kept; moves are paused (back in about ${Math.ceil(notice.retry_after / 60)} min).`
    : "");
  if (current && current.game) render(current.game);
}

function connect() {
  if (socket) socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws/games/${current.id}`);
  socket = ws;
  ws.onopen = () => { retry = 0; $("connection").textContent = "live"; $("connection").classList.add("live"); };
  ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "game") {
      show(data.game);
    } else if (data.type === "engine") {
      say(`The AI's move is late (${data.reason}); asking again in ${Math.round(data.retry_in)} s`);
    } else if (data.type === "error") {
      say(data.error);
    } else if (data.type === "maintenance") {
      setMaintenance(data.active ? data : null);
    }
  };
  ws.onclose = () => {
    $("connection").textContent = "reconnecting";
    $("connection").classList.remove("live");
    if (socket !== ws) return;
    // 1012 (server restart) and network drops alike: come back with a growing pause.
    retry = Math.min(retry + 1, 6);
    setTimeout(() => { if (socket === ws) connect(); }, 250 * 2 ** retry);
  };
}

function open(id, tokens, both) {
  const colors = Object.keys(tokens);
  current = { id, tokens, color: colors[0], colors: both && colors.length === 2, game: null };
  location.hash = new URLSearchParams({ game: id, ...Object.fromEntries(colors.map((c) => [c, tokens[c]])) });
  $("game").hidden = false;
  connect();
}

$("new-game").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  say("");
  try {
    const data = await api("/games", {
      size: parseInt(form.get("size"), 10),
      komi: parseFloat(form.get("komi")),
      opponent: form.get("opponent"),
      color: form.get("color"),
      ...(form.get("opponent") === "ai"
        ? { level: form.get("level"), analysis: form.get("analysis") === "on" }
        : {}),
    });
    const mine = form.get("color") === "black" ? "B" : "W";
    const tokens = { [mine]: data.tokens[mine] };
    open(data.game.id, tokens, false);
    show(data.game);
    const other = mine === "B" ? "W" : "B";
    $("invite").hidden = !data.tokens[other];
    if (data.tokens[other]) {
      $("invite-link").value = `${location.origin}${location.pathname}#game=${data.game.id}&${other}=${data.tokens[other]}`;
    }
  } catch (error) {
    say(error.message);
  }
});

$("pass").addEventListener("click", () => act(`/games/${current.id}/pass`, {}));
$("accept").addEventListener("click", async () => {
  // With both seats on this page, each accepts in turn.
  const accepted = current.game.accepted || [];
  const seat = Object.keys(current.tokens).find((c) => !accepted.includes(c));
  say("");
  try {
    show(await api(`/games/${current.id}/accept`, { token: current.tokens[seat] }));
  } catch (error) {
    say(error.message);
  }
});
$("analysis-toggle").addEventListener("click", () => act(`/games/${current.id}/analysis`, { on: !current.game.analysis }));
// The level and the analysis bar only mean something against the computer.
const opponentSelect = $("new-game").querySelector("select[name=opponent]");
function showAiOptions() {
  for (const node of document.querySelectorAll(".ai-only")) node.hidden = opponentSelect.value !== "ai";
}
opponentSelect.addEventListener("change", showAiOptions);
showAiOptions();
$("resign").addEventListener("click", () => {
  if (confirm("Resign this game?")) act(`/games/${current.id}/resign`, {});
});

// A link (or a reload) with #game=...&B=... or &W=... resumes the game with that seat.
const params = new URLSearchParams(location.hash.slice(1));
if (params.get("game")) {
  const tokens = {};
  for (const c of ["B", "W"]) if (params.get(c)) tokens[c] = params.get(c);
  if (Object.keys(tokens).length) open(params.get("game"), tokens, Object.keys(tokens).length === 2);
}
