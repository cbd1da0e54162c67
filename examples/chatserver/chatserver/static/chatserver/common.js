/* Shared by the demo's pages: page configuration, POST with Django's CSRF token, the header's link indicator.
 * No framework and no build step: the demo must run on an offline machine straight from a checkout. */
(function () {
  'use strict';
  var body = document.body;
  var heartbeat = null;
  try { heartbeat = JSON.parse(body.dataset.heartbeat || 'null'); } catch (e) { heartbeat = null; }

  var LABELS = { idle: 'idle', connecting: 'connecting…', open: 'connected', stale: 'stale link',
    reconnecting: 'reconnecting…', closed: 'closed' };

  function csrfToken() {
    var input = document.querySelector('input[name=csrfmiddlewaretoken]');
    return input ? input.value : '';
  }

  /** POST form fields; resolves with the JSON answer, rejects with the server's own error message. */
  function post(url, fields) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'X-CSRFToken': csrfToken(), 'X-Requested-With': 'fetch' },
      body: new URLSearchParams(fields)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok || answer.ok === false) throw new Error(answer.error || ('HTTP ' + response.status));
        return answer;
      });
    });
  }

  /** Show the state of this page's websocket in the header (states of ws4redis.js: open/stale/reconnecting...). */
  function setLink(state) {
    var indicator = document.getElementById('link-indicator');
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.querySelector('.label').textContent = LABELS[state] || state;
  }

  /** A stable colour per name, so people are recognisable at a glance. */
  function paintAvatar(el) {
    var name = el.dataset.name || el.textContent, hash = 0;
    for (var i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) % 360;
    el.style.background = 'hsl(' + hash + ', 55%, 48%)';
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;  // textContent only: messages are never parsed as HTML
    return node;
  }

  Array.prototype.forEach.call(document.querySelectorAll('.avatar[data-name]'), paintAvatar);

  window.demo = {
    websocketUri: body.dataset.websocketUri,  // ws://host/ws/ from ws4redis' context processor
    heartbeat: heartbeat,
    user: body.dataset.user,
    post: post,
    setLink: setLink,
    paintAvatar: paintAvatar,
    el: el
  };
})();
