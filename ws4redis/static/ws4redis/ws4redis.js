/*!
 * ws4redis.js: the browser client of ws4redis. No dependencies.
 *
 * Load it as a classic script (`<script src=".../ws4redis.js">`, global `WS4Redis`), as an ES module
 * (`import { WS4Redis } from ".../ws4redis.mjs"`, or `import ".../ws4redis.js"` for the global), or with `require`.
 *
 * Two APIs on one object:
 * - the original's: `WS4Redis({uri, connecting, connected, disconnected, receive_message, heartbeat_msg})` with
 *   `send_message`, `get_state`, `close`, `is_connecting`, `is_connected`, `is_closing`, `is_closed`. A page passing
 *   those options speaks the legacy protocol (no subprotocol), byte for byte what django-websocket-redis spoke;
 * - the modern one: `new WS4Redis({facility, subscribe, publish})`, `on(event, fn)`, `send`, `ready()`, `subscribe`,
 *   `close()`, speaking `ws4redis.v2` (JSON envelopes, ping/pong, resume). See docs/client.md.
 *
 * Every socket gets its own timers and handlers, and everything a socket owns is released when it is dropped, so a
 * timer of an old socket can never close a new one (the original's heartbeat bug), and `close()` really ends it.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  }
  if (root) {
    root.WS4Redis = api.WS4Redis;
  }
})(typeof globalThis !== 'undefined' ? globalThis : (typeof self !== 'undefined' ? self : this), function () {
  'use strict';

  var V2 = 'ws4redis.v2';
  var LEGACY = 'legacy';
  var AUDIENCES = ['broadcast', 'user', 'group', 'session'];
  // Options only the original client knew: their presence means "a page written for django-websocket-redis".
  var ORIGINAL_OPTIONS = ['uri', 'connecting', 'connected', 'disconnected', 'receive_message', 'heartbeat_msg'];
  var EVENTS = ['open', 'close', 'message', 'stale', 'fresh', 'recovered', 'pong', 'welcome', 'shutdown', 'revoked',
    'error', 'state', 'presence', 'subscription'];
  var CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  // send_message() before the socket opens: kept (in order) up to this many, then dropped with a console warning.
  var OUTBOX_LIMIT = 100;
  // A page whose sockets close this many times in a row without ever opening is told why, and backs off to the cap.
  var REFUSED_AFTER = 3;

  // ---------------------------------------------------------------------------------------------------------------
  // Pure parts (no sockets, no timers): exported as WS4Redis.Backoff, .HeartbeatMonitor, .parseFrame, ... for tests.

  /**
   * Exponential backoff with full jitter: the n-th delay is uniform in [0, min(cap, base * factor^n)).
   * Full jitter (not "exponential plus a little noise") is what spreads thousands of clients dropped by one restart
   * over the whole window, instead of sending them back in synchronised waves.
   */
  function Backoff(options) {
    options = options || {};
    this.base = positive(options.base, 1000);
    this.cap = positive(options.cap, 30000);
    this.factor = positive(options.factor, 2);
    this.random = typeof options.random === 'function' ? options.random : Math.random;
    this.attempt = 0;
  }
  /** The upper bound of the next delay. */
  Backoff.prototype.ceiling = function () {
    return Math.min(this.cap, this.base * Math.pow(this.factor, this.attempt));
  };
  /** The next delay in ms; each call widens the window until the cap. */
  Backoff.prototype.next = function () {
    var ceiling = this.ceiling();
    this.attempt += 1;
    return this.random() * ceiling;
  };
  /** After a healthy period: the next failure is treated as the first. */
  Backoff.prototype.reset = function () {
    this.attempt = 0;
  };

  /**
   * When the server's suggested delay (shutdown, reload) must be honoured: never earlier than `suggested`, spread
   * over one more `suggested` so that all the sockets of a restarted server do not come back in the same millisecond.
   */
  function suggestedDelay(suggested, random) {
    var ms = Math.max(0, Number(suggested) || 0);
    return ms + (random || Math.random)() * ms;
  }

  /**
   * Dead-link detection by a missed-heartbeat budget. `tick()` is called once per heartbeat interval, `alive()`
   * whenever anything arrives. A link silent for `staleAfter` intervals is "stale" (the page may show it; mobile
   * links often come back), for `maxMissed` intervals "dead" (drop the socket and reconnect).
   */
  function HeartbeatMonitor(options) {
    options = options || {};
    this.maxMissed = Math.max(1, Math.floor(positive(options.maxMissed, 3)));
    this.staleAfter = Math.min(this.maxMissed, Math.max(1, Math.floor(positive(options.staleAfter, 2))));
    this.missed = 0;
    this._heard = true;
  }
  /** Something arrived: the link works. Returns true if it was stale (now fresh again). */
  HeartbeatMonitor.prototype.alive = function () {
    var wasStale = this.missed >= this.staleAfter;
    this.missed = 0;
    this._heard = true;
    return wasStale;
  };
  /** One interval passed: 'ok', 'stale' (just became stale), 'waiting' (still stale) or 'dead'. */
  HeartbeatMonitor.prototype.tick = function () {
    if (this._heard) {
      this._heard = false;
      this.missed = 0;
      return 'ok';
    }
    this.missed += 1;
    if (this.missed >= this.maxMissed) return 'dead';
    if (this.missed === this.staleAfter) return 'stale';
    return this.missed > this.staleAfter ? 'waiting' : 'ok';
  };

  /** Which protocol a set of options asks for: explicit `protocol`, else legacy for the original's options. */
  function chooseProtocol(options) {
    if (options.protocol === V2 || options.protocol === 'v2') return V2;
    if (options.protocol === LEGACY || options.protocol === null) return LEGACY;
    if (options.protocol !== undefined) throw new Error('WS4Redis: unknown protocol ' + String(options.protocol));
    for (var i = 0; i < ORIGINAL_OPTIONS.length; i++) {
      if (options[ORIGINAL_OPTIONS[i]] !== undefined) return LEGACY;
    }
    return V2;
  }

  /**
   * The websocket URL: `options.uri`/`options.url` as given, else `base + facility + ?subscribe-...&publish-...`.
   * `base` defaults to this page's host and `/ws/` (the default WEBSOCKET_URL).
   */
  function buildUrl(options, loc) {
    var explicit = options.url || options.uri;
    if (explicit) return String(explicit);
    if (!options.facility) throw new Error('WS4Redis: give `uri`/`url`, or `facility`');
    var base = options.base;
    if (!base) {
      loc = loc || (typeof location !== 'undefined' ? location : null);
      if (!loc) throw new Error('WS4Redis: no `base` and no page location to derive it from');
      base = (loc.protocol === 'https:' ? 'wss://' : 'ws://') + loc.host + '/ws/';
    }
    if (base.charAt(base.length - 1) !== '/') base += '/';
    var flags = [];
    audiences(options.subscribe, 'subscribe').forEach(function (a) { flags.push('subscribe-' + a); });
    audiences(options.publish, 'publish').forEach(function (a) { flags.push('publish-' + a); });
    if (options.echo) flags.push('echo');
    return base + encodeURIComponent(options.facility) + (flags.length ? '?' + flags.join('&') : '');
  }

  function audiences(value, what) {
    if (value === undefined || value === null) return what === 'subscribe' ? ['broadcast'] : [];
    var list = typeof value === 'string' ? [value] : Array.prototype.slice.call(value);
    list.forEach(function (a) {
      if (AUDIENCES.indexOf(a) < 0) throw new Error('WS4Redis: unknown audience ' + JSON.stringify(a) + ' in ' + what);
    });
    return AUDIENCES.filter(function (a) { return list.indexOf(a) >= 0; });  // canonical order, no repeats
  }

  /** The stream key a message's id is tracked under (what `resume` names); mirrors protocol.py's Origin.stream. */
  function streamKey(message) {
    if (!message.audience) return String(message.channel);
    if (message.audience === 'group' && message.group) return 'group:' + message.group + ':' + message.channel;
    return message.audience + ':' + message.channel;
  }

  /**
   * What one received frame means, in either protocol: {kind: 'message', message} for data, {kind: <control type>,
   * body} for v2 control messages, {kind: 'heartbeat'} for the legacy heartbeat echo, {kind: 'invalid', reason}.
   */
  function parseFrame(data, protocol, heartbeatMsg, facility) {
    if (typeof data !== 'string') {
      // Binary payloads travel unwrapped in both protocols: no channel or id can be told.
      return { kind: 'message', message: { channel: facility || null, audience: null, id: null, data: data } };
    }
    if (protocol !== V2) {
      if (heartbeatMsg && data === heartbeatMsg) return { kind: 'heartbeat' };
      return { kind: 'message', message: { channel: facility || null, audience: null, id: null, data: data } };
    }
    var body;
    try {
      body = JSON.parse(data);
    } catch (e) {
      return { kind: 'invalid', reason: 'not JSON' };
    }
    if (!body || typeof body !== 'object' || typeof body.type !== 'string') return { kind: 'invalid', reason: 'no type' };
    if (body.type === 'message') {
      var message = { channel: body.channel, audience: body.audience, id: body.id === undefined ? null : body.id,
        data: body.data };
      if (body.group) message.group = body.group;
      return { kind: 'message', message: message };
    }
    return { kind: body.type, body: body };
  }

  /** Client -> server envelopes of ws4redis.v2. */
  var envelopes = {
    publish: function (data) { return JSON.stringify({ type: 'publish', data: data }); },
    ping: function (t) { return JSON.stringify({ type: 'ping', t: t }); },
    resume: function (since) { return JSON.stringify({ type: 'resume', since: since }); },
    subscribe: function (facility, audiences) {
      return JSON.stringify({ type: 'subscribe', facility: facility, audiences: audiences });
    },
    unsubscribe: function (facility, audiences) {
      return JSON.stringify({ type: 'unsubscribe', facility: facility, audiences: audiences || [] });
    }
  };

  /**
   * What a developer is told when every attempt closes before opening. Browsers hide the handshake's HTTP status
   * (403, 404...) from scripts: all a page sees is a close with code 1006, so the likely causes are derived from the
   * URL itself.
   */
  function refusalAdvice(url, attempts, delay) {
    var query = String(url).split('?')[1] || '';
    var flags = query.split('&').filter(function (f) { return /^(subscribe-(user|group|session)|publish-)/.test(f); });
    var causes = [];
    if (flags.length) {
      causes.push(flags.join(', ') + ' needs a logged-in user under the default policy (WS4REDIS_POLICY ' +
        "'strict'): log the visitor in, or ask only for subscribe-broadcast");
    }
    causes.push("the page's origin is not in ALLOWED_HOSTS / WS4REDIS_ALLOWED_ORIGINS (403)");
    causes.push('no websocket server at this URL: WEBSOCKET_URL differs, or `manage.py runserver` is not ' +
      "ws4redis' (put \"ws4redis\" before \"django.contrib.staticfiles\" in INSTALLED_APPS) (404)");
    causes.push('the server is not running or not reachable');
    return 'WS4Redis: ' + url + ' closed ' + attempts + ' times without ever opening: the server refused the ' +
      'handshake or cannot be reached (scripts cannot read the HTTP status: the browser\'s own console line or ' +
      'its Network tab shows it). Likely causes:\n - ' +
      causes.join('\n - ') + '\nRetrying every ~' + Math.round(delay / 1000) + ' s.';
  }

  function positive(value, fallback) {
    return typeof value === 'number' && value > 0 && isFinite(value) ? value : fallback;
  }

  function facilityOf(url) {
    var m = /\/([^/?#]+)(?:[?#]|$)/.exec(String(url).replace(/^wss?:\/\/[^/]*/, ''));
    return m ? decodeURIComponent(m[1]) : null;
  }

  function now() {
    return typeof performance !== 'undefined' && performance.now ? performance.now() : Date.now();
  }

  // ---------------------------------------------------------------------------------------------------------------
  // The client.

  /**
   * A websocket to ws4redis that reconnects until `close()`. Callable with or without `new`, as the original.
   * The second argument of the original (jQuery) is accepted and ignored.
   */
  function WS4Redis(options) {
    if (!(this instanceof WS4Redis)) return new WS4Redis(options);
    options = options || {};
    if (!options.uri && !options.url && !options.facility) throw new Error('No Websocket URI in options');
    this.options = options;
    this.protocol = chooseProtocol(options);
    this.url = buildUrl(options);
    this.facility = options.facility || facilityOf(this.url);
    this.lastIds = {};  // stream key -> last message id seen, sent in `resume` after a reconnect
    this.rtt = null;  // the last ping round-trip time in ms (v2)
    this.state = 'idle';  // idle, connecting, open, stale, reconnecting, closed
    this._listeners = {};
    this._ws = null;
    this._socket = null;  // per-socket bookkeeping: timers and monitor, dropped with the socket
    this._reconnectTimer = null;
    this._stopped = false;
    this._everOpened = false;
    this._unopened = 0;  // consecutive attempts that closed before opening (a refused handshake looks like this)
    this._outbox = [];  // send_message() calls made before the socket opened, sent in order at open
    this._dropped = 0;  // send_message() calls dropped because the outbox was full or the client closed
    this._waiters = [];
    this._pending = [];  // in-band subscribe/unsubscribe requests waiting for the server's answer
    this._facilities = {};  // facility -> audiences added with addFacility, asked for again after each reconnect
    var hb = options.heartbeat || {};
    this._heartbeatInterval = positive(hb.interval, 5000);
    this._heartbeatMsg = options.heartbeat_msg || null;
    // Legacy: heartbeats only with heartbeat_msg, as the original. v2: always, unless heartbeat is false.
    this._heartbeats = this.protocol === V2 ? options.heartbeat !== false : !!this._heartbeatMsg;
    this._monitorOptions = { staleAfter: hb.staleAfter, maxMissed: hb.maxMissed };
    this._backoff = new Backoff(options.backoff);
    this._healthyAfter = positive(options.healthyAfter, 10000);
    this._connectTimeout = positive(options.connectTimeout, 10000);
    this._WebSocket = options.WebSocket || (typeof WebSocket !== 'undefined' ? WebSocket : null);
    this._random = (options.backoff && options.backoff.random) || Math.random;
    if (!this._WebSocket) throw new Error('WS4Redis: no WebSocket implementation');
    if (options.autoConnect !== false) this._connect();
  }

  var proto = WS4Redis.prototype;

  // -- modern API -------------------------------------------------------------------------------------------------

  /** Add a listener; returns a function removing it. */
  proto.on = function (event, fn) {
    if (EVENTS.indexOf(event) < 0) throw new Error('WS4Redis: unknown event ' + JSON.stringify(event));
    (this._listeners[event] = this._listeners[event] || []).push(fn);
    var self = this;
    return function () { self.off(event, fn); };
  };

  proto.off = function (event, fn) {
    var list = this._listeners[event];
    if (list) this._listeners[event] = list.filter(function (f) { return f !== fn; });
    return this;
  };

  /** A promise resolved (with this client) the next time the socket is open; rejected if `close()` comes first. */
  proto.ready = function () {
    var self = this;
    if (this.state === 'open' || this.state === 'stale') return Promise.resolve(this);
    if (this._stopped) return Promise.reject(new Error('WS4Redis: closed'));
    return new Promise(function (resolve, reject) { self._waiters.push({ resolve: resolve, reject: reject }); });
  };

  /**
   * Send `data` to the channels this socket may publish on. v2: strings as they are, other values as JSON.
   * Returns false (and sends nothing) when not connected: the caller decides whether to retry, nothing is queued.
   */
  proto.send = function (data) {
    var ws = this._ws;
    if (!ws || ws.readyState !== OPEN || !this._socket) return false;
    var binary = typeof data !== 'string' && data !== null && typeof data === 'object' &&
      (data instanceof ArrayBuffer || ArrayBuffer.isView(data) || (typeof Blob !== 'undefined' && data instanceof Blob));
    if (this.protocol === V2 && !binary) ws.send(envelopes.publish(data));
    else ws.send(data);
    return true;
  };

  /** Measure the round trip now (v2): resolves with the time in ms; the 'pong' event fires as well. */
  proto.ping = function () {
    var self = this;
    if (this.protocol !== V2) return Promise.reject(new Error('WS4Redis: ping needs ws4redis.v2'));
    if (!this._sendPing()) return Promise.reject(new Error('WS4Redis: not connected'));
    return new Promise(function (resolve) {
      var off = self.on('pong', function (info) { off(); resolve(info.rtt); });
    });
  };

  /**
   * Change what this client listens to: `subscribe({facility, subscribe, publish, echo})` or
   * `subscribe('user', 'group')` to add audiences. The server binds channels at the handshake, so the client
   * reconnects at once with the new URL (and resumes from its last ids); no new object is needed.
   */
  proto.subscribe = function () {
    var objectForm = arguments.length === 1 && arguments[0] && typeof arguments[0] === 'object' &&
      !Array.isArray(arguments[0]);
    if (!objectForm && this._inBand()) {
      // Connected over ws4redis.v2 to a server that greeted us: add the audiences in-band, no reconnect.
      var add = audiences(flatten(arguments), 'subscribe');  // throws on an unknown audience
      this._keepAudiences(this._audiences('subscribe').concat(add));
      return this._request('subscribe', this.facility, add);
    }
    var change = objectForm ? arguments[0] : { subscribe: this._audiences('subscribe').concat(flatten(arguments)) };
    return this._resubscribe(change);
  };

  /** Stop listening to some audiences: `unsubscribe('user')` (in-band over ws4redis.v2, else by reconnecting). */
  proto.unsubscribe = function () {
    var drop = flatten(arguments);
    audiences(drop, 'subscribe');  // throws on an unknown audience
    var kept = this._audiences('subscribe').filter(function (a) { return drop.indexOf(a) < 0; });
    if (this._inBand() && drop.length) {
      this._keepAudiences(kept);
      return this._request('unsubscribe', this.facility, audiences(drop, 'subscribe'));
    }
    return this._resubscribe({ subscribe: kept });
  };

  /**
   * Listen to one more facility on this same socket (ws4redis.v2 only): `addFacility('prices', ['broadcast'])`.
   * Authorised by the server as a new connection would be; resolves with the server's answer
   * ({type: 'subscribed', facility, audiences}: the audiences it granted), rejects with its refusal. Kept across
   * reconnects: the client subscribes again after every reconnect.
   */
  proto.addFacility = function (facility, list) {
    if (this.protocol !== V2) return Promise.reject(new Error('WS4Redis: addFacility needs ws4redis.v2'));
    var chosen = audiences(list === undefined ? ['broadcast'] : list, 'subscribe');
    this._facilities[facility] = chosen;
    if (this._inBand()) return this._request('subscribe', facility, chosen);
    var self = this;
    return this.ready().then(function () { return self._waitFor('subscribe', facility); });
  };

  /** Stop listening to a facility added with `addFacility` (or to some of its audiences). */
  proto.removeFacility = function (facility, list) {
    if (this.protocol !== V2) return Promise.reject(new Error('WS4Redis: removeFacility needs ws4redis.v2'));
    var drop = list === undefined ? [] : audiences(list, 'subscribe');
    var had = this._facilities[facility] || [];
    var rest = had.filter(function (a) { return drop.length && drop.indexOf(a) < 0; });
    if (rest.length) this._facilities[facility] = rest;
    else delete this._facilities[facility];
    if (!this._inBand()) return Promise.resolve(null);  // nothing to undo: the next socket will not ask for it
    return this._request('unsubscribe', facility, drop);
  };

  // -- the original API -------------------------------------------------------------------------------------------

  /**
   * Send as the original did (raw on the legacy protocol, a publish envelope on v2). Never throws: called before
   * the socket is open (typically right after `WS4Redis(...)`) or while it reconnects, the message is kept and sent
   * in order once it opens, up to OUTBOX_LIMIT messages; beyond that, or after `close()`, it is dropped with a
   * console warning.
   */
  proto.send_message = function (message) {
    if (this._ws && this._socket && this._ws.readyState === OPEN) {
      this._sendNow(this._ws, message);
    } else if (this._stopped) {
      this._dropMessage('the client is closed');
    } else if (this._outbox.length >= OUTBOX_LIMIT) {
      this._dropMessage(OUTBOX_LIMIT + ' messages already wait for the socket to open');
    } else {
      this._outbox.push(message);
    }
  };

  proto._sendNow = function (ws, message) {
    if (this.protocol === V2) this.send(message);
    else ws.send(message);
  };

  proto._dropMessage = function (why, count) {
    this._dropped += count || 1;
    if (typeof console !== 'undefined') {
      console.warn('WS4Redis: send_message dropped ' + (count || 1) + ' message(s) (' + this._dropped +
        ' so far): ' + why);
    }
  };

  /** The current socket's readyState (0 connecting, 1 open, 2 closing, 3 closed), as the original returned. */
  proto.get_state = function () {
    return this._ws ? this._ws.readyState : (this._stopped ? CLOSED : CONNECTING);
  };
  proto.is_connecting = function () { return this.get_state() === CONNECTING; };
  proto.is_connected = function () { return this.get_state() === OPEN; };
  proto.is_closing = function () { return this.get_state() === CLOSING; };
  proto.is_closed = function () { return this.get_state() === CLOSED; };

  /** Close for good: no reconnect, no timer left behind. Safe to call more than once. */
  proto.close = function (code, reason) {
    if (this._stopped) return;
    this._stopped = true;
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this._ws && this._socket) {
      this._drop({ code: code || 1000, reason: reason || 'closed by the page', wasClean: true }, false);
    }
    this._setState('closed');
    this._rejectWaiters(new Error('WS4Redis: closed'));
    var unsent = this._outbox.length;
    this._outbox = [];
    if (unsent) this._dropMessage('close() came before the socket opened', unsent);
  };

  // -- internals --------------------------------------------------------------------------------------------------

  proto._audiences = function (what) {
    return audiences(this.options[what], what);
  };

  /** In-band subscription changes need an open ws4redis.v2 socket whose server greeted us (`welcome`). */
  proto._inBand = function () {
    return this.protocol === V2 && !!this._socket && !!this._socket.welcomed && !!this._ws &&
      this._ws.readyState === OPEN;
  };

  /** Remember the audiences of the main facility, so that a reconnect asks for the same in its URL. */
  proto._keepAudiences = function (list) {
    var next = {};
    for (var k in this.options) if (Object.prototype.hasOwnProperty.call(this.options, k)) next[k] = this.options[k];
    delete next.url;
    delete next.uri;
    next.facility = this.facility;
    next.subscribe = audiences(list, 'subscribe');
    this.url = buildUrl(next);
    this.options = next;
  };

  /** Send a subscribe/unsubscribe envelope; the promise settles with the server's answer for that facility. */
  proto._request = function (kind, facility, list) {
    this._ws.send(envelopes[kind](facility, list));
    return this._waitFor(kind, facility);
  };

  proto._waitFor = function (kind, facility) {
    var self = this;
    return new Promise(function (resolve, reject) {
      self._pending.push({ kind: kind, facility: facility, resolve: resolve, reject: reject });
    });
  };

  /** An answer to a subscribe/unsubscribe (or its refusal): settle the oldest request it matches. */
  proto._settle = function (kind, body, error) {
    for (var i = 0; i < this._pending.length; i++) {
      var p = this._pending[i];
      if (p.kind === kind && p.facility === body.facility) {
        this._pending.splice(i, 1);
        if (error) p.reject(new Error('WS4Redis: ' + kind + ' ' + body.facility + ' refused: ' + body.reason));
        else p.resolve(body);
        return;
      }
    }
  };

  /** After every (re)connect: ask again for the facilities added with `addFacility`. */
  proto._resendFacilities = function (socket) {
    for (var facility in this._facilities) {
      if (Object.prototype.hasOwnProperty.call(this._facilities, facility)) {
        socket.ws.send(envelopes.subscribe(facility, this._facilities[facility]));
      }
    }
  };

  proto._resubscribe = function (change) {
    var next = {};
    for (var k in this.options) if (Object.prototype.hasOwnProperty.call(this.options, k)) next[k] = this.options[k];
    for (var c in change) if (Object.prototype.hasOwnProperty.call(change, c)) next[c] = change[c];
    delete next.url;
    delete next.uri;
    if (!next.facility) next.facility = this.facility;
    this.url = buildUrl(next);  // throws on a bad audience before anything changes
    this.options = next;
    this.facility = next.facility;
    if (this._stopped) return this.ready();
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = null;
    if (this._ws && this._socket) {
      this._drop({ code: 1000, reason: 'subscription changed', wasClean: true }, false);
    }
    this._connect();
    return this.ready();
  };

  proto._emit = function (event, arg) {
    var list = this._listeners[event];
    if (!list) return;
    list.slice().forEach(function (fn) {
      try {
        fn(arg);
      } catch (err) {
        // One broken listener must not stop the others, nor the client's own bookkeeping.
        setTimeout(function () { throw err; }, 0);
      }
    });
  };

  proto._callback = function (name, arg) {
    var fn = this.options[name];
    if (typeof fn === 'function') {
      try {
        return fn(arg);
      } catch (err) {
        setTimeout(function () { throw err; }, 0);
      }
    }
    return undefined;
  };

  proto._setState = function (state) {
    if (this.state === state) return;
    this.state = state;
    this._emit('state', state);
  };

  proto._rejectWaiters = function (error) {
    var waiters = this._waiters;
    this._waiters = [];
    waiters.forEach(function (w) { w.reject(error); });
  };

  proto._connect = function () {
    var self = this;
    this._reconnectTimer = null;
    if (this._stopped) return;
    this._setState(this._everOpened ? 'reconnecting' : 'connecting');
    this._callback('connecting');
    var ws;
    try {
      ws = this.protocol === V2 ? new this._WebSocket(this.url, [V2]) : new this._WebSocket(this.url);
    } catch (err) {
      // A malformed URL or a blocked port: retried like any other failure, but said once on the console.
      if (typeof console !== 'undefined') console.error('WS4Redis: cannot open ' + this.url, err);
      this._scheduleReconnect({ code: 1006, reason: String(err), wasClean: false });
      return;
    }
    if (this.protocol === V2) ws.binaryType = 'arraybuffer';
    var socket = { ws: ws, monitor: null, heartbeat: null, healthy: null, connectTimer: null };
    this._ws = ws;
    this._socket = socket;
    // Every handler checks that its socket is still the current one: events of a dropped socket are ignored.
    ws.onopen = function () { if (self._socket === socket) self._onOpen(socket); };
    ws.onmessage = function (evt) { if (self._socket === socket) self._onMessage(socket, evt); };
    ws.onclose = function (evt) { if (self._socket === socket) self._drop(evt, true); };
    ws.onerror = function () { /* always followed by close; nothing to do twice */ };
    socket.connectTimer = setTimeout(function () {
      if (self._socket === socket) self._drop({ code: 4000, reason: 'connect timeout', wasClean: false }, true);
    }, this._connectTimeout);
  };

  proto._onOpen = function (socket) {
    var self = this;
    clearTimeout(socket.connectTimer);
    var reconnect = this._everOpened;
    socket.opened = true;
    this._everOpened = true;
    this._unopened = 0;
    socket.healthy = setTimeout(function () { if (self._socket === socket) self._backoff.reset(); }, this._healthyAfter);
    if (this._heartbeats) {
      socket.monitor = new HeartbeatMonitor(this._monitorOptions);
      socket.heartbeat = setInterval(function () { if (self._socket === socket) self._onTick(socket); },
        this._heartbeatInterval);
    }
    if (this.protocol === V2 && (reconnect || Object.keys(this.lastIds).length)) {
      socket.ws.send(envelopes.resume(this.lastIds));
      socket.resumed = true;
    }
    this._setState('open');
    var waiters = this._waiters;
    this._waiters = [];
    waiters.forEach(function (w) { w.resolve(self); });
    var outbox = this._outbox;
    this._outbox = [];
    for (var i = 0; i < outbox.length && this._socket === socket; i++) this._sendNow(socket.ws, outbox[i]);
    this._callback('connected');
    this._emit('open', { reconnect: reconnect, protocol: this.protocol, url: this.url });
  };

  proto._onTick = function (socket) {
    var verdict = socket.monitor.tick();
    if (verdict === 'dead') {
      this._drop({ code: 4000, reason: 'missed ' + socket.monitor.missed + ' heartbeats', wasClean: false }, true);
      return;
    }
    if (verdict === 'stale') {
      this._setState('stale');
      this._emit('stale', { missed: socket.monitor.missed });
    }
    if (this.protocol === V2) this._sendPing();
    else socket.ws.send(this._heartbeatMsg);
  };

  proto._sendPing = function () {
    var ws = this._ws;
    if (!ws || ws.readyState !== OPEN || !this._socket) return false;
    ws.send(envelopes.ping(now()));
    return true;
  };

  proto._onMessage = function (socket, evt) {
    if (socket.monitor && socket.monitor.alive()) {
      this._setState('open');
      this._emit('fresh', {});
    }
    var frame = parseFrame(evt.data, this.protocol, this._heartbeatMsg, this.facility);
    switch (frame.kind) {
      case 'heartbeat':
        return;
      case 'message':
        var message = frame.message;
        if (message.id !== null && message.id !== undefined && message.audience) {
          this.lastIds[streamKey(message)] = message.id;
        }
        this._callback('receive_message', message.data);
        this._emit('message', message);
        return;
      case 'pong':
        if (typeof frame.body.t === 'number') this.rtt = Math.max(0, now() - frame.body.t);
        this._emit('pong', { rtt: this.rtt });
        return;
      case 'join':
      case 'leave':
        // Presence (WS4REDIS_PRESENCE with events): {type, channel, audience, user, client}.
        this._emit('presence', frame.body);
        return;
      case 'welcome':
        // History is on (offsets given): remember where each stream stood, so a stream on which nothing arrives
        // before a drop can still be resumed, and answer at once, because the server holds live messages of
        // those streams until it hears from the client (replayed messages must precede live ones).
        if (frame.body.offsets && typeof frame.body.offsets === 'object') {
          for (var stream in frame.body.offsets) {
            if (!(stream in this.lastIds)) this.lastIds[stream] = frame.body.offsets[stream];
          }
          if (!socket.resumed) {
            socket.ws.send(envelopes.resume(this.lastIds));
            socket.resumed = true;
          }
        }
        socket.welcomed = true;  // a server that greets understands in-band subscribe/unsubscribe
        this._resendFacilities(socket);
        this._emit('welcome', frame.body);
        return;
      case 'subscribed':
      case 'unsubscribed':
        this._settle(frame.kind === 'subscribed' ? 'subscribe' : 'unsubscribe', frame.body, false);
        this._emit('subscription', frame.body);
        return;
      case 'recovered':
        this._emit('recovered', { recovered: true, detail: frame.body });
        return;
      case 'not_recovered':
      case 'reconnected':
        // The server could not replay what was missed (no history, or its broker link dropped): the page should
        // reload its state from an ordinary view.
        this._emit('recovered', { recovered: false, reason: frame.kind, detail: frame.body });
        return;
      case 'shutdown':
        this._emit('shutdown', frame.body);
        this._drop({ code: 1001, reason: 'server shutdown', wasClean: true }, true,
          suggestedDelay(frame.body.reconnect_in, this._random));
        return;
      case 'revoked':
        this._emit('revoked', frame.body);
        this._stopped = true;  // the credentials are gone: reconnecting would only be refused
        this._drop({ code: 4003, reason: 'revoked', wasClean: true }, false);
        this._setState('closed');
        this._rejectWaiters(new Error('WS4Redis: revoked'));
        return;
      default:
        if (frame.kind === 'error' && frame.body.request) this._settle(frame.body.request, frame.body, true);
        this._emit('error', frame.kind === 'invalid' ? { reason: frame.reason } : frame.body);
    }
  };

  /**
   * Forget the current socket: detach its handlers, stop its timers, close it without waiting for the peer (a dead
   * link may never answer), tell the page, and reconnect unless stopped. `delay` overrides the backoff.
   */
  proto._drop = function (evt, reconnect, delay) {
    var socket = this._socket;
    if (!socket) return;
    this._socket = null;
    var pending = this._pending;
    this._pending = [];
    pending.forEach(function (p) { p.reject(new Error('WS4Redis: disconnected before the server answered')); });
    clearTimeout(socket.connectTimer);
    clearTimeout(socket.healthy);
    clearInterval(socket.heartbeat);
    var ws = socket.ws;
    var neverOpened = !socket.opened;
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (ws.readyState === CONNECTING || ws.readyState === OPEN) {
      try {
        ws.close(evt.code >= 3000 && evt.code < 5000 || evt.code === 1000 ? evt.code : 1000, evt.reason || '');
      } catch (e) { /* already closing */ }
    }
    this._callback('disconnected', evt);
    if (neverOpened && reconnect) this._unopened += 1;
    if (reconnect && !this._stopped) {
      this._scheduleReconnect(evt, delay, !this._everOpened && this._unopened >= REFUSED_AFTER);
    } else {
      this._emit('close', { code: evt.code, reason: evt.reason, wasClean: !!evt.wasClean, willReconnect: false });
    }
  };

  /**
   * This page has never had an open socket and its attempts keep closing before opening: most likely the server
   * refuses the handshake (403/404), which no retry will change. Say why once per streak, on the console, and wait
   * between half the backoff's cap and the cap instead of hammering the server.
   */
  proto._refused = function () {
    var cap = this._backoff.cap;
    var delay = cap / 2 + this._random() * cap / 2;
    if (this._unopened === REFUSED_AFTER && typeof console !== 'undefined') {
      console.error(refusalAdvice(this.url, this._unopened, cap));
    }
    return delay;
  };

  proto._scheduleReconnect = function (evt, delay, refused) {
    var self = this;
    var ceiling = this._backoff.ceiling();
    var attempt = this._backoff.attempt;
    if (delay === undefined) {
      delay = this._backoff.next();  // the window keeps widening even when refused: a success starts it over
      if (refused) delay = this._refused();
    }
    this._setState('reconnecting');
    this._emit('close', { code: evt.code, reason: evt.reason, wasClean: !!evt.wasClean, willReconnect: true,
      delay: delay, attempt: attempt, ceiling: ceiling });
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(function () { self._connect(); }, delay);
  };

  function flatten(args) {
    var out = [];
    Array.prototype.slice.call(args).forEach(function (a) { out = out.concat(Array.isArray(a) ? a : [a]); });
    return out;
  }

  WS4Redis.V2 = V2;
  WS4Redis.LEGACY = LEGACY;
  WS4Redis.Backoff = Backoff;
  WS4Redis.HeartbeatMonitor = HeartbeatMonitor;
  WS4Redis.suggestedDelay = suggestedDelay;
  WS4Redis.chooseProtocol = chooseProtocol;
  WS4Redis.buildUrl = buildUrl;
  WS4Redis.parseFrame = parseFrame;
  WS4Redis.streamKey = streamKey;
  WS4Redis.refusalAdvice = refusalAdvice;
  WS4Redis.OUTBOX_LIMIT = OUTBOX_LIMIT;
  WS4Redis.REFUSED_AFTER = REFUSED_AFTER;
  WS4Redis.envelopes = envelopes;
  WS4Redis.CONNECTING = CONNECTING;
  WS4Redis.OPEN = OPEN;
  WS4Redis.CLOSING = CLOSING;
  WS4Redis.CLOSED = CLOSED;

  return { WS4Redis: WS4Redis, default: WS4Redis };
});
