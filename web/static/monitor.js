// The training monitor refreshes its live region without reloading the
// page: every few seconds it asks /monitor/data for the same fragment the
// server rendered into the page, sending the last ETag so that an unchanged
// status costs a 304. It pauses while the tab is hidden.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var src = live.getAttribute("data-src");
  var every = Math.max(1, parseInt(live.getAttribute("data-every"), 10) || 3) * 1000;
  var status = document.getElementById("live-status");
  var text = document.getElementById("live-text");
  var etag = null;
  var timer = null;
  var busy = false;

  function stamp() {
    var d = new Date();
    return d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function say(state, msg) {
    status.setAttribute("data-state", state);
    text.textContent = msg;
  }

  function refresh() {
    if (busy) return;
    busy = true;
    var headers = { "Accept": "text/html" };
    if (etag) headers["If-None-Match"] = etag;
    fetch(src, { credentials: "same-origin", cache: "no-store", headers: headers })
      .then(function (res) {
        if (res.status === 304) {
          say("live", "Live · as of " + stamp());
          return;
        }
        if (res.status === 401) {
          say("error", "Session expired — log in again");
          stop();
          return;
        }
        if (!res.ok) {
          say("error", "Could not refresh (" + res.status + ") — retrying");
          return;
        }
        var tag = res.headers.get("ETag");
        return res.text().then(function (html) {
          etag = tag;
          live.innerHTML = html;
          say("live", "Live · as of " + stamp());
        });
      })
      .catch(function () { say("error", "Connection lost — retrying"); })
      .then(function () { busy = false; });
  }

  function start() {
    if (timer === null) timer = setInterval(refresh, every);
  }
  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
  }
  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { stop(); } else { refresh(); start(); }
  });
  start();
})();
