// Fleet and service dashboard: draw the Plotly charts from the JSON the server embedded
// and update them in place (Plotly.react) from the charts endpoint; run the rollback
// dialog. No inline scripts: the page's JSON sits in <script type="application/json">.
(function () {
  "use strict";

  var CONFIG = {responsive: true, displaylogo: false};

  function drawCharts() {
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var source = document.getElementById(el.dataset.figure);
      if (!source || !window.Plotly) { return; }
      var figure = JSON.parse(JSON.parse(source.textContent));
      window.Plotly.newPlot(el, figure.data, figure.layout, CONFIG);
    });
  }

  function updateMarkers(markers) {
    var list = document.querySelector("[data-marker-list]");
    if (!list) { return; }
    list.textContent = "";
    markers.forEach(function (pair) {
      var item = document.createElement("li");
      var label = document.createElement("strong");
      label.textContent = pair[0];
      item.appendChild(label);
      item.appendChild(document.createTextNode(" " + pair[1]));
      list.appendChild(item);
    });
  }

  function followCharts() {
    var charts = document.querySelector("[data-charts-url]");
    if (!charts || !window.SlipwayLive || !window.Plotly) { return; }
    var seconds = parseInt(charts.dataset.pollSeconds, 10) || 5;
    window.SlipwayLive.poll(charts.dataset.chartsUrl, seconds, function (payload) {
      Object.keys(payload.charts).forEach(function (id) {
        var el = document.querySelector('[data-figure="' + id + '"]');
        var figure = payload.charts[id];
        if (el) { window.Plotly.react(el, figure.data, figure.layout, CONFIG); }
      });
      updateMarkers(payload.markers || []);
      charts.dataset.updatedAt = String(Date.now());
    });
  }

  function setField(dialog, name, value) {
    var el = dialog.querySelector('[data-field="' + name + '"]');
    if (!el || value === undefined) { return; }
    if ("value" in el && el.tagName === "INPUT") { el.value = value; } else { el.textContent = value; }
  }

  // Delegated: the buttons live in fragments that polls replace.
  function openDialog(button) {
    var dialog = document.getElementById(button.dataset.openDialog);
    if (!dialog) { return; }
    var form = dialog.querySelector("form");
    if (button.dataset.action) { form.action = button.dataset.action; }
    dialog.querySelector("[data-target-id]").value = button.dataset.targetId || "";
    dialog.querySelector("[data-target-label]").textContent = button.dataset.targetLabel || "";
    setField(dialog, "where", button.dataset.where);
    setField(dialog, "live-label", button.dataset.liveLabel);
    setField(dialog, "expected-live", button.dataset.expectedLive);
    var reason = dialog.querySelector("textarea");
    if (button.dataset.reason) { reason.value = button.dataset.reason; }
    dialog.showModal();
    // Reason prefilled from the breach: Confirm is the next (second) click.
    if (reason.value) {
      dialog.querySelector("button[type=submit]").focus();
    } else {
      reason.focus();
    }
  }

  function wireDialogs() {
    document.addEventListener("click", function (event) {
      var opener = event.target.closest("[data-open-dialog]");
      if (opener) { openDialog(opener); return; }
      var closer = event.target.closest("[data-close-dialog]");
      if (closer) { closer.closest("dialog").close(); }
    });
    // One submission per form: a double click sends one request (the server refuses a
    // second rollback anyway; this keeps the page from asking twice).
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (!form.matches("form[data-once]")) { return; }
      if (form.dataset.sent) { event.preventDefault(); return; }
      form.dataset.sent = "1";
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.disabled = true; b.textContent = b.dataset.busyLabel || "Rolling back…";
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts(); wireDialogs(); followCharts();
  });
})();
