/* The chat page, on the original django-websocket-redis API (`WS4Redis({uri, ...})`), which ws4redis keeps.
 * One socket listens to the `chat` facility on three audiences; the server's views decide who receives what. */
(function () {
  'use strict';
  var demo = window.demo;
  var convs = {};        // conversation key -> {list: <ol>, button, unread}
  var active = null;
  var seen = {};         // message ids already shown (a message may reach us on two audiences)
  var messages = document.getElementById('messages');

  function conversation(key) {
    if (!convs[key]) {
      var button = document.querySelector('.conv[data-conv="' + CSS.escape(key) + '"]');
      if (!button && key.indexOf('direct:') === 0) button = addDirect(key.slice(7));
      var list = demo.el('ol');
      list.dataset.conv = key;
      list.hidden = true;
      messages.appendChild(list);
      convs[key] = { list: list, button: button, unread: 0 };
    }
    return convs[key];
  }

  function addDirect(name) {
    var item = demo.el('li');
    var button = demo.el('button', 'conv');
    button.dataset.conv = 'direct:' + name;
    button.dataset.mode = 'direct';
    button.dataset.to = name;
    button.dataset.title = name;
    button.dataset.desc = 'Private: only ' + name + ' and you see these messages.';
    var avatar = demo.el('span', 'avatar small', name.charAt(0).toUpperCase());
    avatar.dataset.name = name;
    demo.paintAvatar(avatar);
    button.appendChild(avatar);
    button.appendChild(document.createTextNode(' ' + name + ' '));
    var badge = demo.el('span', 'badge');
    badge.hidden = true;
    button.appendChild(badge);
    button.addEventListener('click', function () { activate(button.dataset.conv); });
    item.appendChild(button);
    document.getElementById('direct-list').appendChild(item);
    return button;
  }

  function setUnread(conv, count) {
    conv.unread = count;
    if (!conv.button) return;
    var badge = conv.button.querySelector('.badge');
    badge.hidden = count === 0;
    badge.textContent = String(count);
    conv.button.classList.toggle('unread', count > 0);
  }

  function activate(key) {
    var conv = conversation(key);
    if (active) {
      convs[active].list.hidden = true;
      if (convs[active].button) convs[active].button.classList.remove('active');
    }
    active = key;
    conv.list.hidden = false;
    if (conv.button) {
      conv.button.classList.add('active');
      document.getElementById('conv-title').textContent = conv.button.dataset.title;
      document.getElementById('conv-desc').textContent = conv.button.dataset.desc;
    }
    setUnread(conv, 0);
    document.getElementById('empty-note').hidden = conv.list.children.length > 0;
    messages.scrollTop = messages.scrollHeight;
    document.getElementById('composer-text').focus();
  }

  /** Where a message belongs: the room, the group it was sent to, or the conversation with the other person. */
  function keyOf(message) {
    if (message.mode === 'room') return 'room:lobby';
    if (message.mode === 'group') return 'group:' + message.to;
    return 'direct:' + (message.from === demo.user ? message.to : message.from);
  }

  function show(message) {
    if (seen[message.id]) return;
    seen[message.id] = true;
    var key = keyOf(message);
    var conv = conversation(key);
    var item = demo.el('li', 'msg' + (message.from === demo.user ? ' mine' : ''));
    item.dataset.id = message.id;
    var avatar = demo.el('span', 'avatar', message.from.charAt(0).toUpperCase());
    avatar.dataset.name = message.from;
    demo.paintAvatar(avatar);
    var bodyEl = demo.el('div', 'body');
    var meta = demo.el('div', 'meta');
    meta.appendChild(demo.el('strong', 'from', message.from));
    var time = demo.el('time', 'muted', new Date(message.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }));
    time.dateTime = message.at;
    meta.appendChild(time);
    bodyEl.appendChild(meta);
    bodyEl.appendChild(demo.el('div', 'text', message.text));
    item.appendChild(avatar);
    item.appendChild(bodyEl);
    conv.list.appendChild(item);
    if (key === active) {
      document.getElementById('empty-note').hidden = true;
      messages.scrollTop = messages.scrollHeight;
    } else {
      setUnread(conv, conv.unread + 1);
    }
  }

  /** A user came online or went away (the server's user_online/user_offline signals, broadcast to the room). */
  function markPresence(change) {
    if (typeof change.user !== 'string') return;
    Array.prototype.forEach.call(document.querySelectorAll('.presence[data-user]'), function (dot) {
      if (dot.dataset.user !== change.user) return;
      dot.classList.toggle('online', change.online === true);
      dot.title = change.online === true ? 'online' : 'away';
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll('.conv[data-conv]'), function (button) {
    button.addEventListener('click', function () { activate(button.dataset.conv); });
  });
  activate('room:lobby');

  document.getElementById('composer').addEventListener('submit', function (event) {
    event.preventDefault();
    var input = document.getElementById('composer-text');
    var error = document.getElementById('composer-error');
    var text = input.value.trim();
    if (!text) return;
    var button = convs[active].button;
    // The view publishes; this page shows the line when it comes back over the websocket, like every other reader.
    demo.post('/chat/send/', { mode: button.dataset.mode, to: button.dataset.to, text: text }).then(function () {
      input.value = '';
      error.hidden = true;
    }, function (err) {
      error.textContent = 'Not sent: ' + err.message;
      error.hidden = false;
    });
  });

  // The original API, unchanged from django-websocket-redis: uri, callbacks and the heartbeat string.
  var socket = WS4Redis({
    uri: demo.websocketUri + 'chat?subscribe-broadcast&subscribe-user&subscribe-group',
    heartbeat_msg: demo.heartbeat,
    connecting: function () { demo.setLink('connecting'); },
    connected: function () { demo.setLink('open'); },
    disconnected: function () { demo.setLink('reconnecting'); },
    receive_message: function (data) {
      var message;
      try { message = JSON.parse(data); } catch (e) { return; }
      if (message && message.presence) markPresence(message.presence);
      else if (message && message.id && message.mode) show(message);
    }
  });
  window.chatSocket = socket;  // for the console (and the end-to-end test): socket.get_state()
})();
