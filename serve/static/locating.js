// The 待定位 panel of the staff page: messages that name no community, by street; select
// several and assign them one grid. Also shows what share of the messages the queue took.
// Self-contained: it reads the session token review.js keeps and talks to /review/api.
"use strict";
(() => {
  const PAGE = 20;
  const loc = { offset: 0, total: 0, items: [], reasons: {} };
  const el = (selector) => document.querySelector(selector);
  const esc = (text) => String(text ?? "").replace(/[&<>"]/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  const percent = (share) => (share === null || share === undefined ? "—" : `${(share * 100).toFixed(1)}%`);

  async function call(path, options = {}) {
    const token = sessionStorage.getItem("wangge-token");
    const headers = { "Content-Type": "application/json", Authorization: `Bearer ${token}` };
    const response = await fetch(`/review/api${path}`, { ...options, headers });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      const detail = (Array.isArray(body.detail) ? body.detail.map((e) => e.msg).join("；") : body.detail || "")
        .replace(/\[[A-Z]\d+\]\s*/g, "");  // the error's code: the sentence says it in Chinese
      throw new Error(response.status === 401 ? "登录已过期，请重新登录" : detail || `请求失败（${response.status}）`);
    }
    return body;
  }

  function build() {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = "/review/static/locating.css";
    document.head.append(css);
    const panel = document.createElement("details");
    panel.id = "locating";
    panel.innerHTML = `
      <summary>待定位 <span id="locating-count"></span></summary>
      <p id="queued-shares" class="shares"></p>
      <form id="locating-filter">
        <select name="street" aria-label="街道"><option value="">全部街道</option></select>
        <input name="q" placeholder="关键词，如小区或路名" aria-label="关键词">
        <button type="submit">筛选</button>
      </form>
      <label class="all"><input type="checkbox" id="locating-all"> 全选本页</label>
      <ol id="locating-list"></ol>
      <div class="pager"><button type="button" id="locating-prev">上一页</button>
        <span id="locating-range"></span><button type="button" id="locating-next">下一页</button></div>
      <form id="locating-assign">
        <input name="grid_id" list="grids" placeholder="网格编号（可输入社区名搜索）" aria-label="网格" required>
        <button type="submit">定位所选</button>
      </form>
      <p id="locating-message" aria-live="polite"></p>`;
    (el("#work aside") || el("#work") || document.body).append(panel);
    el("#locating-filter").addEventListener("submit", (event) => { event.preventDefault(); loc.offset = 0; load(); });
    el("#locating-prev").addEventListener("click", () => { loc.offset = Math.max(0, loc.offset - PAGE); load(); });
    el("#locating-next").addEventListener("click", () => { loc.offset += PAGE; load(); });
    el("#locating-all").addEventListener("change", (event) => {
      for (const box of document.querySelectorAll("#locating-list input")) { box.checked = event.target.checked; }
    });
    el("#locating-assign").addEventListener("submit", (event) => { event.preventDefault(); assign(); });
    panel.addEventListener("toggle", () => { if (panel.open) { load(); } });
  }

  function say(text, error = false) {
    const message = el("#locating-message");
    message.textContent = text;
    message.className = error ? "error" : "";
  }

  async function streets() {
    const select = el("#locating-filter select[name=street]");
    const chosen = select.value;
    const counts = await call("/locating/streets");
    el("#locating-count").textContent = `（${counts.total}）`;
    select.innerHTML = '<option value="">全部街道</option>' + counts.streets.map((s) =>
      `<option value="${s.code === "" ? "-" : esc(s.code)}">${esc(s.name || s.code)}（${s.open}）</option>`).join("");
    select.value = [...select.options].some((o) => o.value === chosen) ? chosen : "";
  }

  async function shares() {
    const stats = await call("/stats");
    const queued = stats.queued;
    if (!queued) { return; }
    if (!Object.keys(loc.reasons).length) { loc.reasons = (await call("/choices")).reasons || {}; }
    const parts = Object.entries(queued.by_reason).filter(([, r]) => r.tasks)
      .map(([code, r]) => `${esc(loc.reasons[code] || code)} ${percent(r.share)}`);
    el("#queued-shares").innerHTML = `入队 ${percent(queued.task_share)}（共 ${queued.messages} 条留言）` +
      (parts.length ? `：${parts.join(" · ")}` : "") +
      `<br>待定位 ${percent(queued.unlocated.share)}，未处理 ${queued.unlocated.open} 条` +
      (queued.linked ? `；并入同案任务 ${queued.linked} 条` : "");
  }

  async function load() {
    try {
      await Promise.all([streets(), shares()]);
      const form = new FormData(el("#locating-filter"));
      const query = new URLSearchParams({ offset: loc.offset, limit: PAGE });
      const street = form.get("street");
      if (street) { query.set("street", street === "-" ? "" : street); }
      if (form.get("q").trim()) { query.set("q", form.get("q").trim()); }
      const page = await call(`/locating?${query}`);
      if (!page.items.length && loc.offset > 0 && page.total > 0) { loc.offset = 0; return load(); }
      Object.assign(loc, { total: page.total, items: page.items });
      render();
    } catch (error) {
      say(error.message, true);
    }
  }

  function render() {
    el("#locating-all").checked = false;
    el("#locating-list").innerHTML = loc.items.map((item) => {
      // "title: 城厢 → 城厢街道": the field's name is not for the page
      const notes = item.hints.map((hint) => hint.replace(/^[a-z_]+: /, ""));
      const hints = notes.length ? `<small class="hints">线索：${esc(notes.join("；"))}</small>` : "";
      return `<li><label><input type="checkbox" data-id="${item.message_id}" data-version="${item.version}">` +
        ` <b>${esc(item.title || item.content.slice(0, 30))}</b></label>` +
        `<small>留言 ${item.message_id} · ${esc(item.created_at.slice(0, 16).replace("T", " "))}` +
        ` · ${esc(item.street_name || "未写街道")}</small>` +
        (item.title ? `<div class="text">${esc(item.content.slice(0, 80))}</div>` : "") + `${hints}</li>`;
    }).join("") || "<li>没有待定位的留言</li>";
    const end = loc.offset + loc.items.length;
    el("#locating-range").textContent = loc.total ? `第 ${loc.offset + 1}–${end} 条，共 ${loc.total} 条` : "";
    el("#locating-prev").disabled = loc.offset === 0;
    el("#locating-next").disabled = end >= loc.total;
  }

  async function assign() {
    const chosen = [...document.querySelectorAll("#locating-list input:checked")]
      .map((box) => ({ message_id: Number(box.dataset.id), version: Number(box.dataset.version) }));
    const grid = new FormData(el("#locating-assign")).get("grid_id").trim();
    if (!chosen.length) { say("请先勾选要定位的留言", true); return; }
    try {
      const done = await call("/locating/assign", { method: "POST", body: JSON.stringify({ grid_id: grid, messages: chosen }) });
      await load();
      say(`已将 ${done.located} 条留言定位到 ${done.street_name}${done.community_name} ${done.grid_name}`);
    } catch (error) {
      say(error.message, true);
    }
  }

  build();
  // Loaded once the reviewer is logged in (review.js shows #work then) and when opened.
  const work = el("#work");
  if (work) {
    new MutationObserver(() => { if (!work.hidden) { load(); } })
      .observe(work, { attributes: true, attributeFilter: ["hidden"] });
    if (!work.hidden && sessionStorage.getItem("wangge-token")) { load(); }
  }
})();
