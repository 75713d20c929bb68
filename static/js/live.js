// Live pages that stay cheap. Elements marked [data-live] poll their fragment with htmx;
// this file sends the fragment's ETag back (If-None-Match) so the server can answer 304
// "nothing changed" without rendering, and treats 304 as "keep what is on screen".
// It also pauses polling while a dialog is open (a swap would close the rollback dialog
// under the user's hands) and while the tab is hidden.
(function () {
  "use strict";

  var etags = {};  // request path -> last ETag seen

  function paused() {
    return document.hidden || document.querySelector("dialog[open]") !== null;
  }

  // Conditional GET for any URL: calls onData(parsed JSON) only when the server sent a
  // new version. Used by the dashboard charts; exported for the release page later.
  function poll(url, seconds, onData) {
    function tick() {
      if (paused()) { return; }
      var headers = {"Accept": "application/json"};
      if (etags[url]) { headers["If-None-Match"] = etags[url]; }
      fetch(url, {headers: headers, credentials: "same-origin", cache: "no-store"})
        .then(function (response) {
          if (response.status === 304 || !response.ok) { return null; }
          var tag = response.headers.get("ETag");
          if (tag) { etags[url] = tag; }
          return response.json();
        })
        .then(function (data) { if (data) { onData(data); } })
        .catch(function () { /* a missed poll is retried at the next tick */ });
    }
    return window.setInterval(tick, seconds * 1000);
  }

  window.SlipwayLive = {poll: poll, paused: paused};

  document.addEventListener("DOMContentLoaded", function () {
    if (!window.htmx) { return; }
    // 304 is not an error and has no body: never swap it (htmx would otherwise swap
    // the empty body in, since it swaps every 2xx/3xx by default).
    window.htmx.config.responseHandling = [{code: "304", swap: false}].concat(
      window.htmx.config.responseHandling
    );
    // Pages update in place; no history snapshots of polled fragments.
    window.htmx.config.historyCacheSize = 0;

    document.body.addEventListener("htmx:beforeRequest", function (event) {
      var elt = event.detail.elt;
      if (elt && elt.hasAttribute && elt.hasAttribute("data-live") && paused()) {
        event.preventDefault();
      }
    });
    document.body.addEventListener("htmx:configRequest", function (event) {
      var elt = event.detail.elt;
      if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-live")) { return; }
      var tag = etags[event.detail.path];
      if (tag) { event.detail.headers["If-None-Match"] = tag; }
    });
    document.body.addEventListener("htmx:afterRequest", function (event) {
      var xhr = event.detail.xhr;
      var elt = event.detail.elt;
      if (!xhr || !elt || !elt.hasAttribute || !elt.hasAttribute("data-live")) { return; }
      var tag = xhr.getResponseHeader("ETag");
      if (xhr.status === 200 && tag) { etags[event.detail.requestConfig.path] = tag; }
    });
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      if (event.detail.xhr && event.detail.xhr.status === 304) {
        event.detail.shouldSwap = false;
        event.detail.isError = false;
      }
    });
  });
})();
