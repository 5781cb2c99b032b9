// The training monitor and the page of a run refresh their live region
// without reloading the page: every few seconds they ask the data-src URL
// for the same fragment the server rendered into the page, sending the last
// ETag so that an unchanged state costs a 304. Polling pauses while the tab
// is hidden, and stops for good once the fragment marks itself final (a run
// that has ended: its charts no longer change).
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) return;
  var src = live.getAttribute("data-src");
  var every = Math.max(1, parseInt(live.getAttribute("data-every"), 10) || 3) * 1000;
  var status = document.getElementById("live-status");
  var text = document.getElementById("live-text");
  // The page was rendered from the same entries as the fragment: its tag
  // makes the first poll a 304 too when nothing changed.
  var etag = live.getAttribute("data-etag") || null;
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
  // final reports (and says) that the fragment shown no longer changes.
  function final() {
    var f = live.querySelector("[data-final]");
    if (!f) return false;
    say("ended", "Run " + f.getAttribute("data-final"));
    return true;
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
        if (res.status === 404) {
          say("error", "This run no longer exists");
          done = true;
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
          if (final()) { done = true; stop(); return; }
          say("live", "Live · as of " + stamp());
        });
      })
      .catch(function () { say("error", "Connection lost — retrying"); })
      .then(function () { busy = false; });
  }

  function start() {
    if (timer === null && !done) timer = setInterval(refresh, every);
  }
  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
  }
  document.addEventListener("visibilitychange", function () {
    if (done) return;
    if (document.hidden) { stop(); } else { refresh(); start(); }
  });
  var done = final();
  start();
})();
