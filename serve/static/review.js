// The staff review page: log in, pick a task from the queue, claim, accept or correct it.
//
// Every word the page shows is Chinese: statuses, reasons (their labels come from
// /review/api/choices), and errors, which errorText() maps from the API's answer (a Chinese
// sentence from the server is shown as it is; anything else by its HTTP status and field).
//
// Other scripts extend the page through window.wanggeReview (load them after this file):
//   addSection(render)      render(task, element) fills a section under the task's detail,
//                           each time a task is shown (may be async; a thrown error is shown
//                           in the section, in Chinese);
//   addPanel(title, render) a folding panel in the side bar; render(element) on each refresh;
//   onDashboard(render)     render(stats, days) after each refresh of the dashboard;
//   api(path, options)      a call to /review/api with the session (throws Error(中文));
//   escapeHtml, highlight, select, refresh, state.
"use strict";
const STATUS = { open: "待复核", claimed: "已认领", done: "已完成", invalid: "无效" };
const DECIDED = ["done", "invalid"];  // read-only: nothing to claim or decide
const REVIEW_ACTIONS = { accept: "确认", correct: "更正", invalid: "无效" };
const FIELDS = { category: "分类", department: "部门", grid_id: "网格", duplicate_of: "重复于",
  version: "版本", action: "操作", corrections: "更正", username: "用户名", password: "密码",
  status: "状态", reason: "原因", street: "街道", q: "搜索词", limit: "数量", hot_days: "天数", days: "天数" };
const STATUS_ERRORS = { 400: "请求有误", 401: "登录已失效，请重新登录", 403: "没有权限执行此操作",
  404: "任务不存在，请刷新队列", 409: "任务已被他人处理或已有改动，请刷新后重试", 413: "提交的内容过长",
  422: "提交的内容有误", 429: "操作过于频繁，请稍后再试", 503: "服务暂时不可用，请稍后重试" };
const TYPE_ERRORS = { missing: "缺少必填项", int_parsing: "须为整数", int_type: "须为整数",
  less_than_equal: "数值过大", greater_than_equal: "数值过小", greater_than: "数值过小",
  string_too_long: "过长", string_too_short: "不能为空", string_type: "须为文字",
  string_pattern_mismatch: "格式不对", json_invalid: "格式不对", extra_forbidden: "不允许此项" };
const LATIN = /[A-Za-z]/;
const state = { token: sessionStorage.getItem("wangge-token"), tasks: [], index: -1, username: "",
  choices: { categories: [], departments: [], streets: [], reasons: {} },
  sections: [], panels: [], dashboards: [], gridPicked: "" };
const $ = (selector) => document.querySelector(selector);

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json", Authorization: `Bearer ${state.token}` };
  let response;
  try {
    response = await fetch(`/review/api${path}`, { ...options, headers });
  } catch {
    throw new Error("无法连接服务器，请检查网络后重试");
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) { showLogin(); }
  if (!response.ok) { throw new Error(errorText(response.status, body.detail)); }
  return body;
}

// A Chinese message for a refused request: `detail` is a sentence, or for a refused request
// (422) a list of {loc, msg, type}. Server text with Latin letters is never shown.
function errorText(status, detail) {
  const chinese = (text) => (typeof text === "string" && text && !LATIN.test(text) ? text : "");
  if (Array.isArray(detail) && detail.length) {
    return detail.map((error) => chinese(error.msg) ||
      `${fieldName(error.loc)}${TYPE_ERRORS[error.type] || "取值无效"}`).join("；");
  }
  return chinese(detail) || STATUS_ERRORS[status] || `服务器出错（${status}），请稍后重试`;
}

function fieldName(loc) {
  const names = (loc || []).filter((part) => typeof part === "string" && FIELDS[part]);
  return names.length ? `${FIELDS[names[names.length - 1]]}：` : "";
}

function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Marks the category's evidence words and, in another colour, the place names matched: one
// pass, longest word first; single characters are never marked (店, or 道 inside 街道).
function highlight(text, words, places) {
  const kinds = new Map();
  for (const word of words) { if (word.length > 1 && !/\s/.test(word)) { kinds.set(word, ""); } }
  for (const word of places) { if (word.length > 1) { kinds.set(word, "place"); } }
  if (!kinds.size) { return escapeHtml(text); }
  const pattern = [...kinds.keys()].sort((a, b) => b.length - a.length)
    .map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|");
  return String(text ?? "").split(new RegExp(`(${pattern})`)).map((part, i) =>
    (i % 2 ? `<mark class="${kinds.get(part)}">${escapeHtml(part)}</mark>` : escapeHtml(part))).join("");
}

// "title: 城厢 → 城厢街道" -> "城厢": the words of the message that named a place.
function placeNames(routeEvidence) {
  return (routeEvidence || []).map((e) => e.replace(/^[a-z_]+: /, "").split(" → ")[0])
    .filter((name) => name && !name.includes(":"));
}

function options(values) {
  return values.map((v) => `<option value="${escapeHtml(v.value)}">${escapeHtml(v.label || "")}</option>`).join("");
}

const when = (iso) => escapeHtml(String(iso || "").replace("T", " ").slice(0, 16));
const reasonText = (task) => task.reasons.map((r) => state.choices.reasons[r] || "其他原因").join("、");

function showLogin() {
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#work").hidden = true;
}

async function refresh() {
  const form = new FormData($("#filters"));
  const query = new URLSearchParams([...form].filter(([, value]) => value));
  try {
    state.tasks = (await api(`/tasks?${query}`)).tasks;
    $("#queue-error").textContent = "";
  } catch (error) {
    $("#queue-error").textContent = error.message;
    return;
  }
  renderQueue();
  await refreshStats();
  for (const panel of state.panels) { runHook(panel.render, panel.body); }
  if (state.tasks.length) { select(Math.min(Math.max(state.index, 0), state.tasks.length - 1)); }
  else { $("#task").innerHTML = '<p class="hint">队列为空。</p>'; }
}

function runHook(render, element, ...args) {
  Promise.resolve().then(() => render(...args, element)).catch((error) => {
    element.textContent = LATIN.test(error.message || "") ? "加载失败" : error.message;
  });
}

async function refreshStats() {
  const days = Number($("#window-days").value);
  const stats = await api(`/stats?hot_days=${days}`).catch((error) => ({ error }));
  if (stats.error) { $("#stats").textContent = stats.error.message; return; }
  $("#stats").innerHTML = `<span>待复核 ${stats.open}</span><span>已认领 ${stats.claimed}</span>` +
    `<span>已完成 ${stats.done}</span><span>今日完成 ${stats.done_today}</span>` +
    `<span>近1小时 ${stats.done_last_hour}</span>` +
    `<span>模型一致率 ${stats.agreement === null ? "—" : (stats.agreement * 100).toFixed(0) + "%"}</span>`;
  $("#reviewers").innerHTML = "<tr><th>复核员</th><th>确认</th><th>更正</th><th>无效</th></tr>" +
    stats.reviewers.map((r) => `<tr><td>${escapeHtml(r.reviewer)}</td><td>${r.accept}</td>` +
      `<td>${r.correct}</td><td>${r.invalid}</td></tr>`).join("");
  $("#hot-title").textContent = `热点问题（截至 ${String(stats.hot_until || "").slice(0, 10)} 的近${days}天）`;
  $("#hot").innerHTML = stats.hot_issues.map((c) =>
    `<li>${escapeHtml(c.title)} <small>${c.reports} 条 · ${escapeHtml(c.category || "")}</small></li>`).join("") ||
    "<li>暂无</li>";
  for (const render of state.dashboards) { runHook(render, $("#dashboard"), stats, days); }
}

function renderQueue() {
  $("#queue").innerHTML = state.tasks.map((task, i) =>
    `<li data-i="${i}" class="${i === state.index ? "selected" : ""}">` +
    `<div>${escapeHtml(task.title || task.content.slice(0, 30))}</div>` +
    `<div class="reasons">${escapeHtml(reasonText(task))}` +
    `${task.claimed_by ? " · " + escapeHtml(task.claimed_by) : ""}</div></li>`).join("");
}

const decided = (task) => DECIDED.includes(task.status);

// One open task per case: the case's other doubtful messages joined this task.
function joinedText(task) {
  if (!task.joined_total) { return ""; }
  const items = (task.joined || []).map((m) => `<li>留言编号 ${escapeHtml(m.external_id || m.message_id)}：${escapeHtml(m.title)}</li>`).join("");
  return `<div id="task-joined"><p>同案件另有 ${task.joined_total} 条存疑留言并入此任务（复核结论只用于本条留言）：</p><ul>${items}</ul></div>`;
}

function taskDetail(task) {
  const p = task.prediction;
  const top = (p.top_k || []).map((c) => `<tr><td>${escapeHtml(c.category)}</td><td>${(c.probability * 100).toFixed(1)}%</td></tr>`).join("");
  const place = [p.street_name, p.community_name, p.grid_id].filter(Boolean).map(escapeHtml).join(" / ") || "未定位";
  const dup = p.duplicate_of ? `重复于留言 ${escapeHtml(p.duplicate_of_external || p.duplicate_of)}（案件 ${escapeHtml(p.case_id)}，相似度 ${Number(p.dup_score).toFixed(2)}）` : "新案件";
  const words = p.highlights || p.evidence || [];
  return `
    <h2>${escapeHtml(task.title) || `留言 ${escapeHtml(task.external_id || task.message_id)}`}</h2>
    ${task.external_id ? `<p class="meta">留言编号 ${escapeHtml(task.external_id)}</p>` : ""}
    <p id="task-text">${highlight(task.content, words, placeNames(p.route_evidence))}</p>
    <p>原因：${escapeHtml(reasonText(task))} · 状态：<span class="status ${escapeHtml(task.status)}">${STATUS[task.status] || "未知"}</span>
      ${task.claimed_by ? ` · 认领人：${escapeHtml(task.claimed_by)}` : ""}</p>
    <h3>${p.review ? "复核后" : "模型判断"}：${escapeHtml(p.category)}</h3>
    ${p.review ? `<p>复核：${escapeHtml(p.review.by)} · ${REVIEW_ACTIONS[p.review.action] || ""} · ${when(p.review.at)}</p>` : ""}
    <table class="top">${top}</table>
    <p>部门：${escapeHtml(p.department || "—")} · 位置：${place}</p>
    <p id="task-duplicate">${dup}</p>${joinedText(task)}
    <section id="duplicate-panel"></section>`;
}

const ACTIONS_HTML = `
    <div class="actions">
      <button id="claim">认领 (c)</button><button id="accept">确认 (a)</button>
      <button id="invalid">无效 (x)</button>
    </div>
    <form id="correction">
      <label for="c-category">分类</label><input id="c-category" name="category" list="categories" placeholder="输入搜索">
      <label for="c-department">部门</label><input id="c-department" name="department" list="departments" placeholder="输入搜索">
      <label for="c-grid">网格</label>
      <div class="grid-field">
        <input id="c-grid" name="grid_id" autocomplete="off" placeholder="输入网格、社区或街道名" role="combobox" aria-controls="grid-options">
        <ul id="grid-options" role="listbox" hidden></ul><div id="grid-chosen"></div>
      </div>
      <span></span><button type="submit">更正 (e)</button>
    </form>`;

function select(i) {
  state.index = i;
  renderQueue();
  const task = state.tasks[i];
  $("#task").innerHTML = taskDetail(task) +
    (decided(task) ? `<p class="readonly">此任务${STATUS[task.status]}，只读。</p>` : ACTIONS_HTML) +
    '<p id="task-error" class="error" role="alert"></p><div id="task-extra"></div>';
  if (!decided(task)) { bindActions(); }
  window.DuplicatePanel?.show(task, $("#duplicate-panel"));  // cases.js
  for (const render of state.sections) {
    const section = document.createElement("section");
    section.className = "extra";
    $("#task-extra").append(section);
    runHook(render, section, task);
  }
}

function bindActions() {
  $("#claim").onclick = () => act("claim", {});
  $("#accept").onclick = () => act("decision", { action: "accept" });
  $("#invalid").onclick = () => act("decision", { action: "invalid" });
  bindGridSearch();
  $("#correction").onsubmit = (event) => {
    event.preventDefault();
    const corrections = Object.fromEntries([...new FormData(event.target)].filter(([, v]) => v.trim()));
    if ("grid_id" in corrections && corrections.grid_id !== state.gridPicked && /[^\x00-\x7f]/.test(corrections.grid_id)) {
      $("#task-error").textContent = "网格：请从搜索结果中选择一个网格";
      return;
    }
    act("decision", { action: "correct", corrections });
  };
}

// The grid field asks the server (GET /review/api/grids?q=) as the reviewer types: a grid's,
// community's or street's name or alias offers its grids; picking one fills in the grid's id.
function bindGridSearch() {
  const input = $("#c-grid");
  const list = $("#grid-options");
  let timer = 0;
  let asked = "";
  const pick = (item) => {
    input.value = item.dataset.id;
    state.gridPicked = item.dataset.id;
    $("#grid-chosen").textContent = `已选：${item.dataset.label}`;
    list.hidden = true;
  };
  input.addEventListener("input", () => {
    clearTimeout(timer);
    state.gridPicked = "";
    $("#grid-chosen").textContent = "";
    timer = setTimeout(async () => {
      const q = input.value.trim();
      asked = q;
      if (!q) { list.hidden = true; return; }
      const found = await api(`/grids?q=${encodeURIComponent(q.slice(0, 50))}&limit=20`)
        .catch((error) => ({ error }));
      if (asked !== q) { return; }  // the reviewer typed on
      if (found.error) { $("#grid-chosen").textContent = found.error.message; list.hidden = true; return; }
      list.innerHTML = found.grids.map((g) => {
        const label = `${g.name} · ${g.community_name} · ${g.street_name}`;
        return `<li role="option" data-id="${escapeHtml(g.id)}" data-label="${escapeHtml(label)}">${escapeHtml(g.name)} ` +
          `<small>${escapeHtml(g.community_name)} · ${escapeHtml(g.street_name)}</small></li>`;
      }).join("") || "<li>没有找到网格</li>";
      if (found.total > found.grids.length) { list.innerHTML += `<li><small>共 ${found.total} 个，请输入更多字缩小范围</small></li>`; }
      list.hidden = false;
    }, 150);
  });
  list.addEventListener("mousedown", (event) => {
    const item = event.target.closest("li[data-id]");
    if (item) { event.preventDefault(); pick(item); }
  });
  input.addEventListener("keydown", (event) => {
    const items = [...list.querySelectorAll("li[data-id]")];
    if (list.hidden || !items.length) { return; }
    const at = items.findIndex((item) => item.classList.contains("active"));
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      const next = at < 0 ? (step > 0 ? 0 : items.length - 1) : (at + step + items.length) % items.length;
      items.forEach((item, i) => item.classList.toggle("active", i === next));
    } else if (event.key === "Enter" && at >= 0) {
      event.preventDefault();
      pick(items[at]);
    } else if (event.key === "Escape") {
      list.hidden = true;
    }
  });
  input.addEventListener("blur", () => { list.hidden = true; });
}

async function act(kind, body) {
  const task = state.tasks[state.index];
  if (decided(task)) { return; }
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
  const task = state.tasks[state.index];
  const move = {
    j: () => select(Math.min(state.index + 1, state.tasks.length - 1)),
    k: () => select(Math.max(state.index - 1, 0)),
  };
  const change = {
    c: () => act("claim", {}),
    a: () => act("decision", { action: "accept" }),
    x: () => act("decision", { action: "invalid" }),
    e: () => $("#c-category").focus(),
  };
  const keys = task && decided(task) ? move : { ...move, ...change };
  if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
});

$("#queue").addEventListener("click", (event) => {
  const item = event.target.closest("li");
  if (item) { select(Number(item.dataset.i)); }
});

$("#filters").addEventListener("submit", (event) => { event.preventDefault(); state.index = 0; refresh(); });
$("#window-days").addEventListener("change", () => { refreshStats(); });

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = Object.fromEntries(new FormData(event.target));
  let response;
  try {
    response = await fetch("/review/api/login", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(form) });
  } catch {
    $("#login-error").textContent = "无法连接服务器，请检查网络后重试";
    return;
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 429) {
    const minutes = Math.ceil(Number(response.headers.get("Retry-After")) / 60);
    $("#login-error").textContent = `登录失败次数过多，请 ${minutes} 分钟后再试`;
    return;
  }
  if (response.status === 401) { $("#login-error").textContent = "用户名或密码错误"; return; }
  if (!response.ok) { $("#login-error").textContent = errorText(response.status, body.detail); return; }
  $("#login-error").textContent = "";
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
  state.choices = await api("/choices");
  $("#login").hidden = true;
  $("#logout").hidden = false;
  $("#work").hidden = false;
  $("#who").textContent = username || "";
  const c = state.choices;  // searchable lists of the correction form, built once
  let lists = document.getElementById("choice-lists");
  if (!lists) {
    lists = document.createElement("div");
    lists.id = "choice-lists";
    lists.hidden = true;
    document.body.append(lists);
  }
  lists.innerHTML =
    `<datalist id="categories">${options(c.categories.map((v) => ({ value: v })))}</datalist>` +
    `<datalist id="departments">${options(c.departments.map((v) => ({ value: v })))}</datalist>`;
  const filters = $("#filters");
  filters.category.innerHTML = '<option value="">全部分类</option>' + options(c.categories.map((v) => ({ value: v, label: v })));
  filters.street.innerHTML = '<option value="">全部街道</option>' + options(c.streets.map((s) => ({ value: s.code, label: s.name })));
  filters.reason.innerHTML = '<option value="">全部原因</option>' + options(Object.entries(c.reasons)
    .filter(([code]) => code !== "unlocated")  // not a task: the 待定位 panel lists those
    .map(([code, label]) => ({ value: code, label })));
  await refresh();
}

window.wanggeReview = {
  api, escapeHtml, highlight, errorText, select, refresh, state,
  addSection(render) { state.sections.push(render); },
  onDashboard(render) { state.dashboards.push(render); },
  addPanel(title, render) {
    const panel = document.createElement("details");
    panel.open = true;
    panel.innerHTML = `<summary>${escapeHtml(title)}</summary><div></div>`;
    $("#side").append(panel);
    state.panels.push({ render, body: panel.querySelector("div") });
  },
};

// after the other scripts have registered their hooks
window.addEventListener("DOMContentLoaded", () => {
  if (state.token) { start().catch(showLogin); } else { showLogin(); }
});
