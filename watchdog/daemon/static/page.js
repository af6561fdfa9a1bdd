// Live updates for the status page: fetch the same page every few seconds and swap the board
// in place. Without JavaScript the page refreshes itself (a <noscript> meta refresh), so this
// is a convenience, never a requirement. No third-party code, no inline script (the CSP).
(function () {
  "use strict";
  var EVERY_MS = 5000;
  var live = document.getElementById("live");

  function say(text, stale) {
    if (!live) { return; }
    live.textContent = text;
    live.className = stale ? "live stale" : "live";
  }

  function openDetails(root) {
    var open = {};
    root.querySelectorAll("details[id]").forEach(function (d) { open[d.id] = d.open; });
    return open;
  }

  function refresh() {
    return fetch(window.location.href, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (resp) {
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.text();
      })
      .then(function (text) {
        var fresh = new DOMParser().parseFromString(text, "text/html").getElementById("board");
        var old = document.getElementById("board");
        if (!fresh || !old) { throw new Error("no board in the answer"); }
        var open = openDetails(old);
        fresh.querySelectorAll("details[id]").forEach(function (d) {
          if (Object.prototype.hasOwnProperty.call(open, d.id)) { d.open = open[d.id]; }
        });
        old.replaceWith(fresh);
        say("Live: updated " + new Date().toISOString().slice(11, 19) + " UTC", false);
      })
      .catch(function (err) {
        say("The watchdog did not answer (" + err.message + "): what you see may be stale.", true);
      });
  }

  window.watchdogRefresh = refresh;
  say("Live: updates every " + EVERY_MS / 1000 + " s", false);
  window.setInterval(refresh, EVERY_MS);
}());
