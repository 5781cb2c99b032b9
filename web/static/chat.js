// The chat streams a reply into the page: the form's POST is sent with
// fetch, asking for text/event-stream, and each {"delta"} event is added to
// the reply as it arrives. Stop aborts the request, which cancels the
// reply on the server too. Without this script the form still works: the
// server answers once the reply is over.
(function () {
  "use strict";
  var form = document.getElementById("chat-form");
  if (!form || !window.fetch || !window.TextDecoder || !window.AbortController) return;
  var list = document.getElementById("messages");
  var input = document.getElementById("content");
  var send = form.querySelector("button[type=submit]");
  var stop = document.getElementById("chat-stop");
  var status = document.getElementById("chat-status");
  var model = list.getAttribute("data-model") || "Assistant";
  var notes = {
    error: "The reply was cut short: the inference server failed or did not answer in time.",
    canceled: "Stopped before the end."
  };
  var ctrl = null;

  function add(role, text) {
    var empty = document.getElementById("no-messages");
    if (empty) empty.remove();
    var li = document.createElement("li");
    li.className = "msg msg-" + role;
    li.setAttribute("data-status", role === "user" ? "done" : "streaming");
    var meta = document.createElement("span");
    meta.className = "msg-meta";
    meta.textContent = role === "user" ? "You" : model;
    var body = document.createElement("div");
    body.className = "msg-body";
    body.textContent = text;
    li.appendChild(meta);
    li.appendChild(body);
    list.appendChild(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }
  function settle(li, state, note) {
    li.setAttribute("data-status", state);
    if (note) {
      var p = document.createElement("p");
      p.className = "msg-note";
      p.textContent = note;
      li.appendChild(p);
    }
  }
  function busy(on) {
    send.disabled = on;
    stop.hidden = !on;
    status.textContent = on ? "Writing…" : "";
  }

  // handle applies one event to the reply; it returns true on the last.
  function handle(reply, block) {
    var data = "";
    block.split("\n").forEach(function (line) {
      if (line.indexOf("data:") === 0) data += line.slice(5).trim();
    });
    if (!data) return false;
    var ev = JSON.parse(data);
    var body = reply.querySelector(".msg-body");
    if (ev.delta) {
      body.textContent += ev.delta;
      reply.scrollIntoView({ block: "end" });
    }
    if (ev.error) reply.setAttribute("data-error", ev.error.code);
    if (ev.done) {
      reply.id = "m-" + ev.message.id;
      body.textContent = ev.message.content;
      var st = ev.message.status;
      settle(reply, st, st === "error" && ev.error ? ev.error.message : notes[st]);
      return true;
    }
    return false;
  }

  function read(res, reply) {
    var type = res.headers.get("Content-Type") || "";
    if (type.indexOf("text/event-stream") !== 0) {
      return res.json().then(function (e) {
        settle(reply, "error", (e.error && e.error.message) || ("The message was not sent (" + res.status + ")."));
      });
    }
    var reader = res.body.getReader();
    var decoder = new TextDecoder();
    var buf = "";
    var finished = false;
    function pump() {
      return reader.read().then(function (r) {
        if (r.done) {
          if (!finished) settle(reply, "error", "The connection ended before the reply did.");
          return;
        }
        buf += decoder.decode(r.value, { stream: true }).replace(/\r\n/g, "\n");
        var i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          finished = handle(reply, buf.slice(0, i)) || finished;
          buf = buf.slice(i + 2);
        }
        return pump();
      });
    }
    return pump();
  }

  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value;
    if (!text.trim() || ctrl) return;
    var body = new URLSearchParams(new FormData(form));
    add("user", text);
    var reply = add("assistant", "");
    input.value = "";
    busy(true);
    ctrl = new AbortController();
    fetch(form.action, {
      method: "POST", body: body, credentials: "same-origin", signal: ctrl.signal,
      headers: { "Accept": "text/event-stream" }
    })
      .then(function (res) { return read(res, reply); })
      .catch(function (e) {
        settle(reply, e && e.name === "AbortError" ? "canceled" : "error",
          e && e.name === "AbortError" ? notes.canceled : "The connection was lost.");
      })
      .then(function () { ctrl = null; busy(false); input.focus(); });
  });
  stop.addEventListener("click", function () { if (ctrl) ctrl.abort(); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit();
  });
})();
