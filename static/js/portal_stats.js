/*
 * CivicGrid public statistics: bar charts (ECharts, loaded before this file) of the
 * median time to close by kind of problem and by street. The tables below each
 * chart hold the same figures for readers without script or sight.
 */
(function () {
  "use strict";

  const dataEl = document.getElementById("stats-data");
  if (!dataEl || typeof echarts === "undefined") return;
  const data = JSON.parse(dataEl.textContent);
  const S = data.strings || {};
  const charts = [];

  // One unit for both charts: hours while every median is under two days, else days.
  const all = (data.categories || []).concat(data.streets || []).filter((row) => row.hours !== null);
  const inHours = all.every((row) => row.hours < 48);
  const unit = inHours ? S.hours : S.days;
  const value = (row) => (inHours ? row.hours : Math.round((row.hours / 24) * 10) / 10);

  function draw(elementId, rows) {
    const el = document.getElementById(elementId);
    if (!el || !rows.length) return;
    const shown = rows.filter((row) => row.hours !== null);
    el.style.height = Math.max(180, 34 * shown.length + 70) + "px";
    const chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      grid: { left: 8, right: 48, top: 28, bottom: 8, containLabel: true },
      tooltip: {
        trigger: "axis",
        axisPointer: { type: "shadow" },
        formatter: (items) => {
          const row = shown[items[0].dataIndex];
          const box = document.createElement("div");
          [row.label, `${S.median}: ${value(row)} ${unit}`, `${S.closed}: ${row.closed}`].forEach((line) => {
            const div = document.createElement("div");
            div.textContent = line;
            box.appendChild(div);
          });
          return box.innerHTML;
        },
      },
      xAxis: { type: "value", name: unit, nameTextStyle: { align: "right" } },
      yAxis: {
        type: "category",
        inverse: true,
        data: shown.map((row) => row.label),
        axisLabel: { width: 160, overflow: "truncate" },
      },
      series: [
        {
          type: "bar",
          data: shown.map(value),
          itemStyle: { color: "#1764c6", borderRadius: [0, 4, 4, 0] },
          label: { show: true, position: "right" },
          barMaxWidth: 22,
        },
      ],
    });
    el.dataset.drawn = String(shown.length);
    charts.push(chart);
  }

  draw("chart-categories", data.categories || []);
  draw("chart-streets", data.streets || []);
  window.addEventListener("resize", () => charts.forEach((chart) => chart.resize()));
})();
