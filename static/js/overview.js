// Overview page: audit activity per day, drawn with the vendored Chart.js.
(function () {
  const canvas = document.getElementById("activity-chart");
  const source = document.getElementById("activity-data");
  if (!canvas || !source || typeof Chart === "undefined") return;
  const rows = JSON.parse(source.textContent);
  const brand = getComputedStyle(document.documentElement).getPropertyValue("--brand").trim() || "#2f6fed";
  new Chart(canvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => new Date(r.day).toLocaleDateString(document.documentElement.lang, { day: "numeric", month: "short" })),
      datasets: [{ label: canvas.getAttribute("aria-label"), data: rows.map((r) => r.count), backgroundColor: brand }],
    },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } }, animation: false },
  });
})();
