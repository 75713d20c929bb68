// Service dashboard: draw the Plotly charts from the JSON the server embedded, and run
// the rollback dialog. No inline scripts: the page's JSON sits in <script type="application/json">.
(function () {
  "use strict";

  function drawCharts() {
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source || !window.Plotly) { return; }
      var figure = JSON.parse(JSON.parse(source.textContent));
      window.Plotly.newPlot(el, figure.data, figure.layout, {responsive: true, displaylogo: false});
    });
  }

  function wireDialogs() {
    document.querySelectorAll("[data-open-dialog]").forEach(function (button) {
      button.addEventListener("click", function () {
        var dialog = document.getElementById(button.dataset.openDialog);
        dialog.querySelector("[data-target-id]").value = button.dataset.targetId || "";
        dialog.querySelector("[data-target-label]").textContent = button.dataset.targetLabel || "";
        dialog.showModal();
        dialog.querySelector("textarea").focus();
      });
    });
    document.querySelectorAll("[data-close-dialog]").forEach(function (button) {
      button.addEventListener("click", function () { button.closest("dialog").close(); });
    });
    // One submission per form: a double click sends one request (the server refuses a
    // second rollback anyway; this keeps the page from asking twice).
    document.querySelectorAll("form[data-once]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (form.dataset.sent) { event.preventDefault(); return; }
        form.dataset.sent = "1";
        form.querySelectorAll("button[type=submit]").forEach(function (b) {
          b.disabled = true; b.textContent = b.dataset.busyLabel || "Rolling back…";
        });
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(); wireDialogs(); });
})();
