/* ws4redis live HTML: keeps the sockets of {% htmx_stream_from %} and {% turbo_stream_from %} connected.
 *
 * Added once per page by those tags; no dependencies, no configuration. Why it exists:
 * - Turbo's <turbo-stream-source> opens its WebSocket once and never again: after a server restart the page would
 *   stay frozen. A fresh copy of the element opens a new one, so that is what we insert after a close.
 * - htmx's ws extension reconnects only after close codes 1006/1011/1012/1013; a server that drains gracefully
 *   closes with 1001 ("reconnect_in=<ms>" in the reason, spread per socket so a restart brings no storm), and one
 *   that sheds a slow consumer with 4008. We reconnect those too; a revoked session (4003) stays closed.
 * The server replays the facility's kept message on every connect, so a page that reconnects shows the current
 * state without a reload. Each stream element gets data-ws4redis-state="connecting|open|closed" for CSS and tests.
 */
(function () {
  "use strict";
  if (window.ws4redisLive) return; // Turbo Drive re-runs scripts in <body> on every visit
  var BASE_MS = 500, CAP_MS = 30000, RECONNECT = [1001, 4008];

  function delay(attempt, reason) {
    var suggested = /reconnect_in=(\d+)/.exec(reason || "");
    if (suggested) return Number(suggested[1]);
    return Math.random() * Math.min(CAP_MS, BASE_MS * Math.pow(2, attempt)); // full jitter
  }

  function mark(element, state) {
    if (element && element.setAttribute) element.setAttribute("data-ws4redis-state", state);
  }

  function watchTurbo(element) {
    var socket = element.streamSource;
    if (!socket || typeof socket.addEventListener !== "function" || socket.ws4redisWatched) return;
    socket.ws4redisWatched = true;
    var attempt = element.ws4redisAttempt || 0;
    mark(element, "connecting");
    socket.addEventListener("open", function () {
      attempt = 0;
      mark(element, "open");
    });
    function closed(event) {
      if (!element.isConnected || element.streamSource !== socket) return; // removed on purpose
      mark(element, "closed");
      if (event.code === 1000 || event.code === 4003) return;
      setTimeout(function () {
        if (!element.isConnected) return;
        var fresh = element.cloneNode(true);
        fresh.ws4redisAttempt = attempt + 1;
        element.replaceWith(fresh); // Turbo closes the old source and opens a new socket for the copy
        watchTurbo(fresh);
      }, delay(attempt, event.reason));
    }
    socket.addEventListener("close", closed);
    // Turbo may have opened (or lost) the socket before this script ran: its events are gone by then.
    if (socket.readyState === 1) mark(element, "open");
    else if (socket.readyState === 3) closed({ code: 1006, reason: "" });
  }

  function scan(root) {
    if (!root.querySelectorAll) return;
    var found = root.querySelectorAll("turbo-stream-source[data-ws4redis-live]");
    for (var i = 0; i < found.length; i++) watchTurbo(found[i]);
    if (root.matches && root.matches("turbo-stream-source[data-ws4redis-live]")) watchTurbo(root);
  }

  function startTurbo() {
    scan(document);
    new MutationObserver(function (records) {
      records.forEach(function (record) {
        record.addedNodes.forEach(scan);
      });
    }).observe(document.documentElement, { childList: true, subtree: true });
  }

  if (window.customElements) {
    window.customElements.whenDefined("turbo-stream-source").then(startTurbo);
  }

  // htmx: the ws extension's own events, on the element carrying ws-connect.
  var attempts = new WeakMap();
  document.addEventListener("htmx:wsConnecting", function (event) {
    mark(event.target, "connecting");
  });
  document.addEventListener("htmx:wsOpen", function (event) {
    attempts.set(event.target, 0);
    mark(event.target, "open");
  });
  document.addEventListener("htmx:wsClose", function (event) {
    var element = event.target, close = event.detail && event.detail.event;
    mark(element, "closed");
    if (!close || RECONNECT.indexOf(close.code) < 0 || !element.isConnected) return;
    var attempt = attempts.get(element) || 0;
    attempts.set(element, attempt + 1);
    setTimeout(function () {
      if (element.isConnected) event.detail.socketWrapper.reconnect();
    }, delay(attempt, close.reason));
  });

  window.ws4redisLive = { version: 1 };
})();
