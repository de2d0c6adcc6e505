// The dashboard's pictures (Chart.js, vendored in vendor/): messages and the share
// auto-accepted per day, reviewers' decisions per day, categories over time, and messages per
// street with the hot issues' share. Data: GET /review/api/stats/series?days=N, each window
// ending at the newest record. Without Chart.js (the file missing) the page works without them.
"use strict";
(() => {
  const review = window.wanggeReview;
  if (!review || typeof window.Chart === "undefined") { return; }
  const Chart = window.Chart;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.animation = false;  // drawn at once: screenshots and tests see the final picture
  Chart.defaults.maintainAspectRatio = false;
  const COLOURS = ["#0b5394", "#e69138", "#6aa84f", "#cc0000", "#674ea7", "#45818e", "#999999"];
  const charts = {};

  const shortDay = (day) => day.slice(5);  // 2026-11-30 -> 11-30

  function draw(id, config) {
    if (charts[id]) { charts[id].destroy(); }
    charts[id] = new Chart(document.getElementById(id), config);
  }

  function empty(series) { return !series.days || !series.days.length; }

  function drawMessages(m) {
    draw("chart-messages", {
      data: {
        labels: m.days.map(shortDay),
        datasets: [
          { type: "bar", label: "自动通过", data: m.messages.map((n, i) => n - m.queued[i]), backgroundColor: COLOURS[2], stack: "m" },
          { type: "bar", label: "进入复核", data: m.queued, backgroundColor: COLOURS[1], stack: "m" },
          { type: "line", label: "自动通过占比", data: m.auto_share.map((s) => (s === null ? null : s * 100)), borderColor: COLOURS[0], yAxisID: "share", pointRadius: 2 },
        ],
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "条" }, ticks: { precision: 0 } },
        share: { position: "right", min: 0, max: 100, title: { display: true, text: "%" }, grid: { drawOnChartArea: false } } } },
    });
  }

  function drawDecisions(d) {
    const kinds = [["accept", "确认"], ["correct", "更正"], ["invalid", "无效"]];
    draw("chart-decisions", {
      type: "bar",
      data: { labels: d.days.map(shortDay), datasets: kinds.map(([key, label], i) => ({ label, data: d[key], backgroundColor: COLOURS[[2, 1, 3][i]] })) },
      options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "条" }, ticks: { precision: 0 } } } },
    });
  }

  function drawCategories(m) {
    draw("chart-categories", {
      type: "line",
      data: { labels: m.days.map(shortDay), datasets: Object.entries(m.categories).map(([label, data], i) => ({ label, data, borderColor: COLOURS[i % COLOURS.length], backgroundColor: COLOURS[i % COLOURS.length], pointRadius: 1 })) },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "条" }, ticks: { precision: 0 } } } },
    });
  }

  function drawStreets(streets) {
    draw("chart-streets", {
      type: "bar",
      data: {
        labels: streets.map((s) => s.street),
        datasets: [
          { label: "热点问题留言", data: streets.map((s) => s.repeated), backgroundColor: COLOURS[3] },
          { label: "其他留言", data: streets.map((s) => s.messages - s.repeated), backgroundColor: COLOURS[6] },
        ],
      },
      options: { indexAxis: "y", scales: { x: { stacked: true, title: { display: true, text: "条" }, ticks: { precision: 0 } }, y: { stacked: true } } },
    });
  }

  review.onDashboard(async (stats, days, element) => {
    const series = await review.api(`/stats/series?days=${days}`);
    const m = series.messages;
    element.querySelector("#window-note").textContent = empty(m) ? "暂无留言" :
      `截至最新留言 ${m.days[m.days.length - 1]}`;
    drawMessages(m);
    drawDecisions(series.decisions);
    drawCategories(m);
    drawStreets(series.streets);
  });
})();
