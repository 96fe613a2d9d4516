// Hookyard dashboard: refresh the page's live parts without a reload.
// <body data-live="sources,queues"> names the parts; each element with data-part="<name>" gets
// the HTML the server renders for it from /ui/live.json?parts=…, every few seconds.
(function () {
  "use strict";
  var body = document.body;
  var parts = (body.getAttribute("data-live") || "").split(",").filter(Boolean);
  if (!parts.length) { return; }
  var url = body.getAttribute("data-live-url") + "?parts=" + encodeURIComponent(parts.join(","));
  var status = document.querySelector("[data-live-status]");
  var every = 2000;

  function show(text, bad) {
    if (!status) { return; }
    status.textContent = text;
    status.className = bad ? "stale" : "";
  }

  function apply(data) {
    Object.keys(data.parts || {}).forEach(function (name) {
      document.querySelectorAll('[data-part="' + name + '"]').forEach(function (el) {
        el.innerHTML = data.parts[name];
      });
    });
    show("live · updated " + new Date().toLocaleTimeString(), false);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) {
        if (r.redirected || r.status === 401 || r.status === 403) { window.location.reload(); return null; }
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.json();
      })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { show("live · cannot reach the server, retrying", true); })
      .finally(function () { window.setTimeout(poll, every); });
  }

  window.setTimeout(poll, every);
})();
