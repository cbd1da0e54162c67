/* The operations dashboard, on ws4redis.js' modern API (ws4redis.v2): events, heartbeat round-trip time, link state.
 *
 * Every tile carries `ts`, when its source produced it, and every beat carries `interval`. A tile is stale once
 * its age exceeds two intervals (one missed beat). Ages are measured on the server's clock shifted by the smallest
 * delivery delay seen, so a browser whose clock is off does not show everything stale. While this page's own link
 * is not open, no tile can be judged: they all say "no link" instead of blaming their sources. */
(function () {
  'use strict';
  var demo = window.demo;
  var HISTORY = 40;
  var sources = {};      // tile key -> {ts, interval, series: [...], offset}
  var linkState = 'connecting';
  var lastBeatAt = null; // when the last heartbeat answer (pong) arrived
  var rtts = [];
  var reconnects = 0;

  function tileEl(key) { return document.querySelector('.tile[data-tile="' + key + '"]'); }

  function spark(svg, values) {
    if (!svg || values.length < 2) return;
    var max = Math.max.apply(null, values), min = Math.min.apply(null, values);
    var span = max - min || 1;
    var points = values.map(function (v, i) {
      return (i * 100 / (values.length - 1)).toFixed(1) + ',' + (22 - (v - min) * 20 / span).toFixed(1);
    });
    svg.querySelector('polyline').setAttribute('points', points.join(' '));
  }

  function ageText(ms) {
    if (ms < 1000) return 'updated just now';
    if (ms < 60000) return 'updated ' + (ms / 1000).toFixed(1) + ' s ago';
    return 'updated ' + Math.round(ms / 60000) + ' min ago';
  }

  function setPill(el, state, label) {
    el.dataset.state = state;
    el.querySelector('.pill').textContent = label;
  }

  function update(key, tile, interval) {
    var el = tileEl(key);
    if (!el) return;
    var source = sources[key] || (sources[key] = { series: [], offset: Infinity });
    var delay = Date.now() - tile.ts * 1000;
    source.offset = Math.min(source.offset, delay);  // clock skew + the fastest delivery seen
    source.ts = tile.ts;
    source.interval = interval;
    source.series.push(Number(tile.series) || 0);
    if (source.series.length > HISTORY) source.series.shift();
    el.querySelector('.value').textContent = tile.headline;
    el.querySelector('.unit').textContent = tile.unit;
    var details = el.querySelector('.details');
    details.textContent = '';
    (tile.details || []).forEach(function (pair) {
      details.appendChild(demo.el('dt', '', pair[0]));
      details.appendChild(demo.el('dd', '', pair[1]));
    });
    spark(el.querySelector('.spark'), source.series);
    judge(key);
  }

  /** live / stale / nolink for one source tile, from its age and this page's link. */
  function judge(key) {
    var el = tileEl(key), source = sources[key];
    if (!el || !source) return;
    var age = Math.max(0, Date.now() - source.ts * 1000 - source.offset);
    el.querySelector('.age').textContent = ageText(age);
    el.dataset.age = String(Math.round(age));
    if (linkState !== 'open') setPill(el, 'nolink', 'no link');
    else if (age > 2 * source.interval * 1000) setPill(el, 'stale', 'stale');
    else setPill(el, 'live', 'live');
  }

  var STATE_TEXT = { open: 'connected', stale: 'stale (no heartbeat answer)', reconnecting: 'reconnecting',
    connecting: 'connecting', closed: 'closed', idle: 'idle' };

  function renderLink() {
    var el = tileEl('link');
    var state = linkState === 'open' ? 'live' : linkState;
    setPill(el, state, linkState === 'open' ? 'connected' : linkState);
    el.querySelector('[data-field=state]').textContent = STATE_TEXT[linkState] || linkState;
    el.querySelector('[data-field=rtt]').textContent = rtts.length ? rtts[rtts.length - 1].toFixed(1) : '–';
    el.querySelector('[data-field=beat]').textContent =
      lastBeatAt === null ? '–' : ((Date.now() - lastBeatAt) / 1000).toFixed(1) + ' s ago';
    el.querySelector('[data-field=reconnects]').textContent = String(reconnects);
    spark(el.querySelector('.spark'), rtts);
  }

  var socket = new WS4Redis({
    facility: 'dashboard',
    subscribe: 'broadcast',
    base: demo.websocketUri,
    heartbeat: { interval: 2000, staleAfter: 2, maxMissed: 3 }
  });
  socket.on('state', function (state) {
    linkState = state;
    demo.setLink(state);
    renderLink();
    Object.keys(sources).forEach(judge);
  });
  socket.on('open', function (info) { if (info.reconnect) reconnects += 1; renderLink(); });
  socket.on('pong', function (info) {
    lastBeatAt = Date.now();
    if (typeof info.rtt === 'number') {
      rtts.push(info.rtt);
      if (rtts.length > HISTORY) rtts.shift();
    }
    renderLink();
  });
  socket.on('message', function (message) {
    var beat;
    try { beat = JSON.parse(message.data); } catch (e) { return; }
    if (!beat || beat.kind !== 'metrics') return;
    Object.keys(beat.tiles || {}).forEach(function (key) { update(key, beat.tiles[key], beat.interval || 1); });
  });
  // Ages grow between beats: re-judge every tile a few times a second.
  setInterval(function () { Object.keys(sources).forEach(judge); renderLink(); }, 250);
  window.dashboardSocket = socket;
})();
