// The treasury's value chart: total value over time from the page's JSON (BalanceSnapshot
// points), drawn with the vendored Lightweight Charts. Without JavaScript the table and the CSV
// link under the chart carry the same numbers.
(function () {
  "use strict";
  function setUp() {
    var box = document.getElementById("value-chart");
    var data = document.getElementById("value-data");
    if (!box || !data || !window.LightweightCharts) return;
    var LC = window.LightweightCharts;
    var zone = box.getAttribute("data-zone") || "UTC";
    var full = new Intl.DateTimeFormat(undefined, {
      timeZone: zone, day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
    });
    var dark = document.documentElement.dataset.theme !== "light";
    var chart = LC.createChart(box, {
      autoSize: true,
      layout: { background: { color: "transparent" }, textColor: dark ? "#c9d1d9" : "#24292f", attributionLogo: false },
      localization: { timeFormatter: function (t) { return full.format(new Date(t * 1000)) + " " + zone; } },
      grid: { vertLines: { visible: false }, horzLines: { color: dark ? "#21262d" : "#eaeef2" } },
      timeScale: { timeVisible: true, secondsVisible: false },
    });
    var series = chart.addSeries(LC.LineSeries, { lineWidth: 2 });
    var points = JSON.parse(data.textContent).map(function (p) { return { time: p.time, value: Number(p.value) }; });
    series.setData(points);
    box.dataset.points = String(points.length);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setUp);
  else setUp();
})();
