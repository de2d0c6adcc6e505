// The duplicate panel and the case view of the staff page: a task's message next to its case's
// closest messages, the words they share marked, the score explained; same case / not a repeat /
// move; and a case's messages, to merge it into another case, undo a merge or split it.
// review.js calls DuplicatePanel.show(task, element) when it shows a task.
"use strict";
window.DuplicatePanel = (() => {
  const byId = (id) => document.getElementById(id);
  const current = { task: null, view: null, container: null };

  async function call(path, options = {}) {
    const headers = { "Content-Type": "application/json",
      Authorization: `Bearer ${sessionStorage.getItem("wangge-token")}` };
    const response = await fetch(`/review/api${path}`, { ...options, headers });
    const body = await response.json().catch(() => ({}));
    if (response.status === 401 && typeof showLogin === "function") { showLogin(); }
    if (!response.ok) {
      const detail = Array.isArray(body.detail) ? body.detail.map((e) => e.msg).join("；") : body.detail;
      throw new Error(response.status === 401 ? "请重新登录" : detail || `请求失败（${response.status}）`);
    }
    return body;
  }

  function esc(text) {
    return String(text ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }

  // Marks the shared words (longest first, so that 垃圾桶 wins over 垃圾) in escaped text.
  function marked(text, words) {
    const list = [...new Set(words || [])].filter((w) => w.length > 1).sort((a, b) => b.length - a.length);
    if (!list.length) { return esc(text); }
    const pattern = new RegExp(list.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
    let html = "", last = 0;
    for (const match of String(text ?? "").matchAll(pattern)) {
      html += esc(text.slice(last, match.index)) + `<mark class="shared">${esc(match[0])}</mark>`;
      last = match.index + match[0].length;
    }
    return html + esc(String(text ?? "").slice(last));
  }

  const when = (at) => String(at || "").replace("T", " ").slice(0, 16);
  const place = (m) => [m.street_name, m.community_name, m.grid_id].filter(Boolean).join(" / ") || "未定位";

  function card(m, words, label) {
    return `<div class="dup-card${m.closest ? " closest" : ""}">
      <div class="dup-label">${esc(label)}${m.closest ? "（系统匹配）" : ""}</div>
      <div class="dup-meta">留言编号 <b class="ext-id">${esc(m.external_id || "无")}</b> · ${esc(when(m.created_at))}
        · ${esc(place(m))} · 反映人 ${esc(m.reporter)}${m.overlap !== undefined ? ` · 文字重合 ${m.overlap.toFixed(2)}` : ""}</div>
      <div class="dup-title">${marked(m.title, words)}</div>
      <div class="dup-text">${marked(m.content, words)}</div>
      ${m.shared_words ? `<div class="dup-words">共同词语：${m.shared_words.map(esc).join("、") || "无"}</div>` : ""}
    </div>`;
  }

  async function show(task, container) {
    Object.assign(current, { task, container, view: null });
    const caseId = task.prediction.case_id;
    if (!(task.reasons || []).includes("duplicate")) {
      container.innerHTML = `<p class="dup-case">所属案件 ${esc(caseId)}
        <button type="button" class="open-case" id="open-this-case" data-case="${esc(caseId)}">查看案件</button></p><div id="case-view"></div>`;
      bindCaseButtons(container);
      return;
    }
    container.innerHTML = '<p class="hint">正在加载重复对比……</p>';
    let view;
    try { view = await call(`/tasks/${task.task_id}/duplicate`); } catch (error) {
      container.innerHTML = `<p class="error">${esc(error.message)}</p>`;
      return;
    }
    if (current.task !== task) { return; }  // another task was opened meanwhile
    current.view = view;
    const open = view.status === "open" || view.status === "claimed";
    container.innerHTML = `<section class="dup-panel">
      <h3>重复判断 · 案件 ${esc(view.case.case_id)}（${view.case.reports} 条留言）</h3>
      <ul class="dup-why">${view.explanation.map((w) => `<li>${esc(w)}</li>`).join("")}</ul>
      <div class="dup-side">
        <div>${card(view.message, view.message.shared_words, "本条留言")}</div>
        <div>${view.closest.map((m) => card(m, m.shared_words, "同案件留言")).join("") || '<p class="hint">案件中没有其他留言</p>'}</div>
      </div>
      ${open ? `<div class="dup-actions">
        <button type="button" id="dup-same">同一案件</button>
        <button type="button" id="dup-own">不是重复</button>
        <select id="dup-kind"><option value="message">留言编号</option><option value="case">案件编号</option></select>
        <input id="dup-target" placeholder="移到哪条留言或哪个案件">
        <button type="button" id="dup-move">移到该案件</button>
      </div>` : '<p class="hint">该任务已处理，仅供查看。</p>'}
      ${otherCases(view)}
      <p><button type="button" class="open-case" id="open-this-case" data-case="${esc(view.case.case_id)}">查看本案件（合并、拆分）</button></p>
      <p class="error" id="dup-error"></p>
      <div id="case-view"></div>
    </section>`;
    if (open) {
      byId("dup-same").addEventListener("click", () => decide({ action: "same" }));
      byId("dup-own").addEventListener("click", () => decide({ action: "own" }));
      byId("dup-move").addEventListener("click", () => {
        const target = byId("dup-target").value.trim();
        if (!target) { byId("dup-error").textContent = "请填写目标留言编号或案件编号"; return; }
        if (byId("dup-kind").value === "case") {
          if (!/^\d+$/.test(target)) { byId("dup-error").textContent = "案件编号应为数字"; return; }
          decide({ action: "move", to_case: Number(target) });
        } else {
          decide({ action: "move", to_message: target });
        }
      });
    }
    bindCaseButtons(container);
    container.querySelectorAll(".merge-here").forEach((button) => button.addEventListener("click",
      () => openCase(`/cases/${button.dataset.case}/merge`, { method: "POST",
        body: JSON.stringify({ into_case: view.case.case_id }) })));
  }

  // The other cases the message resembles, each with a button merging it into this case.
  function otherCases(view) {
    if (!view.other_cases.length) { return ""; }
    return `<h4>其他相似案件</h4><div class="dup-others">${view.other_cases.map((o) => `
      <div class="dup-other">${card(o.message, o.message.shared_words,
        `案件 ${o.case.case_id}（${o.case.reports} 条留言，相似度 ${o.probability.toFixed(2)}）`)}
        <button type="button" class="merge-here" data-case="${o.case.case_id}">将该案件并入本案件</button>
        <button type="button" class="open-case" data-case="${o.case.case_id}">查看该案件</button></div>`).join("")}</div>`;
  }

  async function decide(body) {
    try {
      await call(`/tasks/${current.task.task_id}/duplicate/decision`, { method: "POST",
        body: JSON.stringify({ version: current.view.version, ...body }) });
      if (typeof refresh === "function") { await refresh(); }
    } catch (error) {
      byId("dup-error").textContent = error.message;
    }
  }

  function bindCaseButtons(root) {
    root.querySelectorAll(".open-case").forEach((button) =>
      button.addEventListener("click", () => openCase(`/cases/${button.dataset.case}`)));
  }

  async function openCase(path, options) {
    const target = byId("case-view");
    try {
      const view = await call(path, options);
      renderCase(target, view);
    } catch (error) {
      const shown = byId("case-error") || byId("dup-error");
      if (shown) { shown.textContent = error.message; } else { target.innerHTML = `<p class="error">${esc(error.message)}</p>`; }
    }
  }

  function renderCase(target, c) {
    const rows = c.messages.map((m) => `<tr>
      <td><input type="checkbox" class="case-pick" value="${m.message_id}" aria-label="选择留言 ${esc(m.external_id || m.message_id)}"></td>
      <td class="ext-id">${esc(m.external_id || "无")}</td><td class="when">${esc(when(m.created_at))}</td>
      <td>${esc(m.title || m.content.slice(0, 40))}</td><td>${esc(place(m))}</td><td>${esc(m.reporter)}</td></tr>`).join("");
    const merged = c.merged_from.map((k) => `<li>案件 ${k.case_id}：${esc(k.title)}
      <button type="button" class="case-unmerge" data-case="${k.case_id}">撤销合并</button></li>`).join("");
    const history = c.history.map((h) => `<li>${esc(when(h.at))} · ${esc(h.actor)} · ${esc(h.action_name)}：${esc(h.text)}</li>`).join("");
    target.innerHTML = `<section class="case-view" data-case="${c.case_id}">
      <h3>案件 ${c.case_id}：${esc(c.title)}</h3>
      <p class="case-count">共 <b>${c.reports}</b> 条留言 · 首次 ${esc(when(c.first_at))} · 最近 ${esc(when(c.last_at))}
        ${c.merged_into ? ` · 已并入案件 ${c.merged_into} <button type="button" class="case-unmerge" data-case="${c.case_id}">撤销合并</button>` : ""}</p>
      <table class="case-messages"><tr><th></th><th>留言编号</th><th>时间</th><th>标题</th><th>地点</th><th>反映人</th></tr>${rows}</table>
      <div class="case-actions">
        <button type="button" id="case-split">拆出所选留言为新案件</button>
        <select id="case-kind"><option value="message">留言编号</option><option value="case">案件编号</option></select>
        <input id="case-target" placeholder="并入哪条留言所在的案件">
        <button type="button" id="case-merge">将本案件并入</button>
      </div>
      <p class="error" id="case-error"></p>
      ${merged ? `<h4>已并入本案件的案件</h4><ul class="case-merged">${merged}</ul>` : ""}
      <h4>处理记录</h4><ol class="case-history">${history || "<li>暂无</li>"}</ol>
    </section>`;
    byId("case-split").addEventListener("click", () => {
      const picked = [...target.querySelectorAll(".case-pick:checked")].map((box) => Number(box.value));
      if (!picked.length) { byId("case-error").textContent = "请先勾选要拆出的留言"; return; }
      openCase(`/cases/${c.case_id}/split`, { method: "POST", body: JSON.stringify({ messages: picked }) });
    });
    byId("case-merge").addEventListener("click", () => {
      const value = byId("case-target").value.trim();
      if (!value) { byId("case-error").textContent = "请填写目标留言编号或案件编号"; return; }
      const isCase = byId("case-kind").value === "case";
      if (isCase && !/^\d+$/.test(value)) { byId("case-error").textContent = "案件编号应为数字"; return; }
      const body = isCase ? { into_case: Number(value) } : { into_message: value };
      openCase(`/cases/${c.case_id}/merge`, { method: "POST", body: JSON.stringify(body) });
    });
    target.querySelectorAll(".case-unmerge").forEach((button) => button.addEventListener("click",
      () => openCase(`/cases/${button.dataset.case}/unmerge`, { method: "POST" })));
  }

  return { show, openCase };
})();
