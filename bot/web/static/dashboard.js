// Draws every chart of a dashboard page with Chart.js (served from this server). Each chart's
// figures come from the JSON block next to its canvas and are also in the table below it.
(function () {
  "use strict";
  if (!window.Chart) { return; }
  var colours = ["#1f5fa8", "#c2571a", "#2b8a3e", "#862e9c", "#5c6770"];
  document.querySelectorAll("script.chart-data").forEach(function (block) {
    var canvas = document.getElementById(block.getAttribute("data-canvas"));
    if (!canvas) { return; }
    var spec = JSON.parse(block.textContent);
    if (!spec.labels || !spec.labels.length) { return; }
    var datasets = spec.datasets.map(function (d, i) {
      return {label: d.label, data: d.data, borderColor: colours[i % colours.length],
              backgroundColor: colours[i % colours.length], tension: 0.2, pointRadius: 2};
    });
    // Numbers as the tables print them (12.345 in Vietnamese); every category label shown.
    var category = {ticks: {autoSkip: !spec.horizontal, maxRotation: 0}};
    var value = {beginAtZero: true};
    new window.Chart(canvas, {
      type: spec.type || "bar",
      data: {labels: spec.labels, datasets: datasets},
      options: {
        locale: document.documentElement.lang === "vi" ? "vi-VN" : undefined,
        indexAxis: spec.horizontal ? "y" : "x",
        responsive: true, maintainAspectRatio: false, animation: false,
        plugins: {legend: {display: datasets.length > 1, position: "bottom"}},
        scales: spec.horizontal ? {x: value, y: category} : {x: category, y: value}
      }
    });
  });
})();
