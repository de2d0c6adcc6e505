// The staff review page: log in, pick a task from the queue, claim, accept or correct it.
"use strict";
const state = { token: sessionStorage.getItem("wangge-token"), tasks: [], index: -1,
  choices: { categories: [], departments: [], grids: [], streets: [], reasons: {} } };
const $ = (selector) => document.querySelector(selector);
const REVIEW_ACTIONS = { accept: "确认", correct: "更正", invalid: "无效" };

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` };
  const response = await fetch(`/review/api${path}`, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { showLogin(); }
  if (!response.ok) { throw new Error(errorText(body.detail) || `HTTP ${response.status}`); }
  return body;
}

// `detail` is a sentence, or for a refused request (422) a list of {loc, msg, type}.
function errorText(detail) {
  return Array.isArray(detail) ? detail.map((error) => error.msg).join("；") : detail;
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Marks the category's evidence words and, in another colour, the place names matched.
function highlight(text, words, places) {
  let html = escapeHtml(text);
  const marks = [...words.filter((w) => w && !w.includes(" ")).map((w) => [w, ""]),
    ...places.map((w) => [w, "place"])];
  for (const [word, kind] of marks) {
    html = html.split(escapeHtml(word)).join(`<mark class="${kind}">${escapeHtml(word)}</mark>`);
  }
  return html;
}

// "title: 城厢 → 城厢街道" -> "城厢": the words of the message that named a place.
function placeNames(routeEvidence) {
  return (routeEvidence || []).map((e) => e.replace(/^[a-z_]+: /, "").split(" → ")[0])
    .filter((name) => name && !name.includes(":"));
}

function options(values) {
  return values.map((v) => `<option value="${escapeHtml(v.value)}">${escapeHtml(v.label || "")}</option>`).join("");
}

function showLogin() {
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#work").hidden = true;
}

async function refresh() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams([...form].filter(([, value]) => value));
  state.tasks = (await api(`/tasks?${query}`)).tasks;
  renderQueue();
  await refreshStats();
  if (state.tasks.length) { select(Math.min(Math.max(state.index, 0), state.tasks.length - 1)); }
  else { $("#task").innerHTML = '<p class="hint">队列为空。</p>'; }
}

async function refreshStats() {
  const stats = await api("/stats");
  $("#stats").innerHTML = `<span>待复核 ${stats.open}</span><span>已认领 ${stats.claimed}</span>` +
    `<span>已完成 ${stats.done}</span><span>今日完成 ${stats.done_today}</span>` +
    `<span>近1小时 ${stats.done_last_hour}</span>` +
    `<span>模型一致率 ${stats.agreement === null ? "—" : (stats.agreement * 100).toFixed(0) + "%"}</span>`;
  $("#reviewers").innerHTML = "<tr><th>复核员（今日）</th><th>确认</th><th>更正</th><th>无效</th></tr>" +
    stats.reviewers.map((r) => `<tr><td>${escapeHtml(r.reviewer)}</td><td>${r.accept}</td>` +
      `<td>${r.correct}</td><td>${r.invalid}</td></tr>`).join("");
  $("#hot").innerHTML = stats.hot_issues.map((c) =>
    `<li>${escapeHtml(c.title)} <small>${c.reports} 条 · ${escapeHtml(c.category || "")}</small></li>`).join("") ||
    "<li>暂无</li>";
}

function renderQueue() {
  $("#queue").innerHTML = state.tasks.map((task, i) =>
    `<li data-i="${i}" class="${i === state.index ? "selected" : ""}">` +
    `<div>${escapeHtml(task.title || task.content.slice(0, 30))}</div>` +
    `<div class="reasons">${escapeHtml(task.reasons.map((r) => state.choices.reasons[r] || r).join("、"))}` +
    `${task.claimed_by ? " · " + escapeHtml(task.claimed_by) : ""}</div></li>`).join("");
}

function select(i) {
  state.index = i;
  renderQueue();
  const task = state.tasks[i];
  const p = task.prediction;
  const top = (p.top_k || []).map((c) => `<tr><td>${escapeHtml(c.category)}</td><td>${(c.probability * 100).toFixed(1)}%</td></tr>`).join("");
  const place = [p.street_name, p.community_name, p.grid_id].filter(Boolean).map(escapeHtml).join(" / ") || "未定位";
  $("#task").innerHTML = `
    <h2>${escapeHtml(task.title)}</h2>
    <p>${highlight(task.content, p.evidence || [], placeNames(p.route_evidence))}</p>
    <p>原因：${escapeHtml(task.reasons.map((r) => state.choices.reasons[r] || r).join("、"))} · 状态：${escapeHtml(task.status)}</p>
    <h3>${p.review ? "复核后" : "模型判断"}：${escapeHtml(p.category)}</h3>
    ${p.review ? `<p>复核：${escapeHtml(p.review.by)} · ${REVIEW_ACTIONS[p.review.action] || ""} · ${escapeHtml(p.review.at)}</p>` : ""}
    <table class="top">${top}</table>
    <p>部门：${escapeHtml(p.department || "—")} · 位置：${place}</p>
    <section id="duplicate-panel"></section>
    <div class="actions">
      <button id="claim">认领 (c)</button><button id="accept">确认 (a)</button>
      <button id="invalid">无效 (x)</button>
    </div>
    <form id="correction">
      <label for="c-category">分类</label><input id="c-category" name="category" list="categories" placeholder="输入搜索">
      <label for="c-department">部门</label><input id="c-department" name="department" list="departments" placeholder="输入搜索">
      <label for="c-grid">网格</label><input id="c-grid" name="grid_id" list="grids" placeholder="输入网格、社区或街道名">
      <label for="c-duplicate">重复于</label><input id="c-duplicate" name="duplicate_of" placeholder="消息编号；“无”表示不重复">
      <span></span><button type="submit">更正 (e)</button>

    </form>
    <p id="task-error" class="error"></p>`;
  window.DuplicatePanel?.show(task, $("#duplicate-panel"));  // cases.js
  $("#claim").onclick = () => act("claim", {});
  $("#accept").onclick = () => act("decision", { action: "accept" });
  $("#invalid").onclick = () => act("decision", { action: "invalid" });
  $("#correction").onsubmit = (event) => {
    event.preventDefault();
    const corrections = Object.fromEntries([...new FormData(event.target)].filter(([, v]) => v.trim()));
    if ("duplicate_of" in corrections) {
      const link = corrections.duplicate_of.trim();
      if (!/^(\d+|无|none)$/.test(link)) { $("#task-error").textContent = "重复于：请填消息编号，或“无”"; return; }
      corrections.duplicate_of = /^\d+$/.test(link) ? Number(link) : null;
    }
    act("decision", { action: "correct", corrections });
  };
}

async function act(kind, body) {
  const task = state.tasks[state.index];
  try {
    const updated = await api(`/tasks/${task.task_id}/${kind}`, { method: "POST", body: JSON.stringify({ version: task.version, ...body }) });
    if (kind === "claim") {  // keep working on it, though it has left the open queue
      state.tasks[state.index] = updated;
      select(state.index);
      await refreshStats();
    } else {
      await refresh();
    }
  } catch (error) {
    $("#task-error").textContent = error.message;
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target.matches("input, select, textarea") || $("#work").hidden || !state.tasks.length) { return; }
  const keys = {
    j: () => select(Math.min(state.index + 1, state.tasks.length - 1)),
    k: () => select(Math.max(state.index - 1, 0)),
    c: () => act("claim", {}),
    a: () => act("decision", { action: "accept" }),
    x: () => act("decision", { action: "invalid" }),
    e: () => $("#c-category").focus(),
  };
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
});

$("#queue").addEventListener("click", (event) => {
  const item = event.target.closest("li");
  if (item) { select(Number(item.dataset.i)); }
});

$("#filters").addEventListener("submit", (event) => { event.preventDefault(); state.index = 0; refresh(); });

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = Object.fromEntries(new FormData(event.target));
  const response = await fetch("/review/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(form) });
  const body = await response.json();
  if (response.status === 429) {
    const minutes = Math.ceil(Number(response.headers.get("Retry-After")) / 60);
    $("#login-error").textContent = `登录失败次数过多，请 ${minutes} 分钟后再试`;
    return;
  }
  if (!response.ok) { $("#login-error").textContent = "用户名或密码错误"; return; }
  state.token = body.token;
  sessionStorage.setItem("wangge-token", body.token);
  await start(body.username);
});

$("#logout").addEventListener("click", async () => {
  await api("/logout", { method: "POST" }).catch(() => {});  // the session ends on the server
  state.token = null;
  sessionStorage.removeItem("wangge-token");
  showLogin();
});

async function start(username) {
  $("#login").hidden = true;
  $("#logout").hidden = false;
  $("#work").hidden = false;
  $("#who").textContent = username || "";
  state.choices = await api("/choices");
  const c = state.choices;  // searchable lists of the correction form, built once
  $("#choice-lists").innerHTML =
    `<datalist id="categories">${options(c.categories.map((v) => ({ value: v })))}</datalist>` +
    `<datalist id="departments">${options(c.departments.map((v) => ({ value: v })))}</datalist>` +
    `<datalist id="grids">${options(c.grids.map((g) => ({ value: g.id, label: `${g.name} · ${g.community_name} · ${g.street_name}` })))}</datalist>`;
  const filters = $("#filters");
  filters.category.innerHTML = '<option value="">全部分类</option>' + options(state.choices.categories.map((v) => ({ value: v, label: v })));
  filters.street.innerHTML = '<option value="">全部街道</option>' + options(state.choices.streets.map((s) => ({ value: s.code, label: s.name })));
  filters.reason.innerHTML = '<option value="">全部原因</option>' + options(Object.entries(c.reasons).map(([code, label]) => ({ value: code, label })));
  await refresh();
}

if (state.token) { start().catch(showLogin); } else { showLogin(); }
