// The client's behaviour against a scripted socket and mocked timers: reconnects, heartbeats, resume, shutdown.
import { afterEach, beforeEach, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeSocket, WS4Redis, latest, reset, sequence } from './fakes.mjs';

beforeEach(() => {
  reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
});
afterEach(() => mock.timers.reset());

const tick = (ms) => mock.timers.tick(ms);

function modern(extra = {}) {
  return new WS4Redis({ facility: 'chat', subscribe: ['broadcast', 'user'], base: 'ws://h/ws/', WebSocket: FakeSocket,
    heartbeat: { interval: 1000, staleAfter: 2, maxMissed: 3 }, backoff: { base: 100, cap: 1000, random: () => 0.5 },
    healthyAfter: 5000, ...extra });
}

function record(client, ...events) {
  const seen = [];
  for (const e of events) client.on(e, (info) => seen.push([e, info]));
  return seen;
}

test('a page written for the original runs as is, on the legacy protocol', () => {
  const calls = [];
  const ws = WS4Redis({ uri: 'ws://h/ws/foo?subscribe-broadcast', heartbeat_msg: '--hb--', WebSocket: FakeSocket,
    connecting: () => calls.push('connecting'), connected: () => calls.push('connected'),
    disconnected: (evt) => calls.push(['disconnected', evt.code]), receive_message: (m) => calls.push(['msg', m]) });
  assert.ok(ws instanceof WS4Redis, 'callable without new');
  const sock = latest();
  assert.equal(sock.protocols, undefined, 'no subprotocol offered');
  assert.ok(ws.is_connecting());
  sock.accept();
  assert.ok(ws.is_connected());
  assert.equal(ws.get_state(), 1);
  sock.deliver('hello');
  sock.deliver('--hb--');
  ws.send_message('raw text');
  assert.deepEqual(sock.sent, ['raw text']);
  tick(5000);
  assert.deepEqual(sock.sent, ['raw text', '--hb--'], 'heartbeat every 5 s as the original');
  ws.close();
  assert.ok(ws.is_closing());
  assert.deepEqual(calls, ['connecting', 'connected', ['msg', 'hello'], ['disconnected', 1000]]);
});

test('no heartbeats on the legacy protocol without heartbeat_msg', () => {
  WS4Redis({ uri: 'ws://h/ws/foo', WebSocket: FakeSocket });
  latest().accept();
  tick(60000);
  assert.deepEqual(latest().sent, []);
  assert.equal(FakeSocket.instances.length, 1);
});

test('close() really stops: no timer survives, no reconnect, even while waiting to reconnect', () => {
  const client = modern();
  latest().accept();
  latest().drop();
  assert.equal(client.state, 'reconnecting');
  client.close();
  tick(120000);
  assert.equal(FakeSocket.instances.length, 1, 'no new socket after close()');
  assert.equal(client.state, 'closed');
  assert.ok(client.is_closed());

  const other = modern();
  const sock = latest();
  sock.accept();
  other.close();
  const sentAtClose = sock.sent.length;
  tick(120000);
  assert.equal(sock.sent.length, sentAtClose, 'no ping after close()');
  assert.deepEqual(sock.closedWith, { code: 1000, reason: 'closed by the page' });
});

test('the heartbeat timer of a dropped socket never touches the next one (the original bug)', () => {
  const client = modern();
  const first = latest();
  first.accept();
  tick(1500); // first socket has a heartbeat running
  first.drop();
  tick(1000); // reconnect delay (0.5 * 100)
  const second = latest();
  assert.notEqual(first, second);
  second.accept();
  // The second socket answers every ping; the first socket's timers must not count missed beats against it.
  for (let i = 0; i < 20; i++) {
    tick(1000);
    for (const p of second.sentJSON().filter((m) => m.type === 'ping')) second.deliver({ type: 'pong', t: p.t });
    second.sent = [];
  }
  assert.equal(second.closedWith, null);
  assert.equal(client.state, 'open');
  assert.equal(FakeSocket.instances.length, 2);
  client.close();
});

test('silence: stale, then dropped and reconnected with a jittered delay; a late frame makes it fresh', () => {
  const client = modern({ backoff: { base: 400, cap: 1000, random: () => 0.25 } });
  const seen = record(client, 'stale', 'fresh', 'close', 'open');
  const sock = latest();
  sock.accept();
  tick(1000); // ok (heard at open), ping
  tick(1000); // missed 1
  assert.equal(client.state, 'open');
  tick(1000); // missed 2: stale
  assert.equal(client.state, 'stale');
  sock.deliver({ type: 'pong', t: 0 });
  assert.equal(client.state, 'open');
  tick(4000); // silent again: heard at the 1st tick, stale at the 2nd missed beat, dead at the 3rd
  assert.equal(client.state, 'reconnecting');
  assert.equal(sock.closedWith.code, 4000);
  const close = seen.find(([e]) => e === 'close')[1];
  assert.equal(close.willReconnect, true);
  assert.equal(close.delay, 100); // 0.25 * 400: full jitter, not the ceiling
  assert.equal(close.ceiling, 400);
  tick(99);
  assert.equal(FakeSocket.instances.length, 1);
  tick(1);
  assert.equal(FakeSocket.instances.length, 2);
  assert.deepEqual(seen.map(([e]) => e), ['open', 'stale', 'fresh', 'stale', 'close']);
  client.close();
});

test('backoff widens on repeated failures and resets after a healthy period', () => {
  const client = modern({ backoff: { base: 100, cap: 10000, random: () => 0.999 } });
  const delays = [];
  client.on('close', (info) => delays.push(info.ceiling));
  for (let i = 0; i < 4; i++) {
    latest().drop();
    tick(20000);
  }
  assert.deepEqual(delays, [100, 200, 400, 800]);
  latest().accept();
  tick(4999);
  latest().deliver({ type: 'pong' });
  latest().drop(); // not yet healthy: the window keeps growing
  tick(20000);
  latest().accept();
  for (let i = 0; i < 6; i++) { tick(1000); latest().deliver({ type: 'pong' }); } // healthy for 5 s
  latest().drop();
  assert.deepEqual(delays, [100, 200, 400, 800, 1600, 100]);
  client.close();
});

test('a connection attempt that hangs is abandoned and retried', () => {
  const client = modern({ connectTimeout: 3000 });
  tick(3000);
  assert.equal(latest().closedWith.code, 4000);
  assert.equal(client.state, 'reconnecting');
  tick(1000);
  assert.equal(FakeSocket.instances.length, 2);
  client.close();
});

test('v2: subprotocol offered, publish envelopes, ids tracked per stream and resumed after a reconnect', async () => {
  const client = modern();
  const seen = record(client, 'message', 'recovered', 'open');
  const sock = latest();
  assert.deepEqual(sock.protocols, ['ws4redis.v2']);
  assert.equal(sock.url, 'ws://h/ws/chat?subscribe-broadcast&subscribe-user');
  const ready = client.ready();
  sock.accept();
  assert.equal(await ready, client);
  assert.deepEqual(sock.sent, [], 'no resume on a first connection with nothing to resume');
  assert.equal(client.send('hi'), true);
  assert.equal(client.send({ n: 1 }), true);
  assert.deepEqual(sock.sentJSON(), [{ type: 'publish', data: 'hi' }, { type: 'publish', data: { n: 1 } }]);
  sock.deliver({ type: 'message', channel: 'chat', audience: 'user', id: '5-0', data: 'a' });
  sock.deliver({ type: 'message', channel: 'chat', audience: 'broadcast', id: '9-1', data: 'b' });
  sock.deliver({ type: 'message', channel: 'chat', audience: 'broadcast', id: null, data: 'kept' });
  assert.deepEqual(client.lastIds, { 'user:chat': '5-0', 'broadcast:chat': '9-1' });
  sock.drop();
  assert.equal(client.send('lost'), false, 'nothing is queued while disconnected');
  tick(1000);
  latest().accept();
  assert.deepEqual(latest().sentJSON(), [{ type: 'resume', since: { 'user:chat': '5-0', 'broadcast:chat': '9-1' } }]);
  latest().deliver({ type: 'not_recovered', streams: ['broadcast:chat', 'user:chat'] });
  latest().deliver({ type: 'reconnected' });
  latest().deliver({ type: 'recovered' });
  const recovered = seen.filter(([e]) => e === 'recovered').map(([, i]) => [i.recovered, i.reason]);
  assert.deepEqual(recovered, [[false, 'not_recovered'], [false, 'reconnected'], [true, undefined]]);
  assert.deepEqual(seen.filter(([e]) => e === 'open').map(([, i]) => i.reconnect), [false, true]);
  assert.deepEqual(seen.filter(([e]) => e === 'message').map(([, m]) => m.data), ['a', 'b', 'kept']);
  client.close();
});

test('pings measure the round trip', async () => {
  const client = modern();
  latest().accept();
  const rtt = client.ping();
  const [ping] = latest().sentJSON();
  assert.equal(ping.type, 'ping');
  latest().deliver({ type: 'pong', t: ping.t });
  assert.equal(typeof (await rtt), 'number');
  assert.ok(client.rtt >= 0);
  client.close();
});

test('the server-suggested delay on shutdown is honoured (no reconnect storm)', () => {
  const client = modern({ backoff: { base: 100, cap: 1000, random: () => 0.5 } });
  const seen = record(client, 'shutdown', 'close');
  latest().accept();
  latest().deliver({ type: 'shutdown', reconnect_in: 4000 });
  assert.equal(latest().closedWith.code, 1000, 'closed at once; the browser only lets a page send 1000 or 3000-4999');
  const close = seen.find(([e]) => e === 'close')[1];
  assert.equal(close.delay, 6000); // 4000 + 0.5 * 4000, never the 100 ms backoff
  tick(5999);
  assert.equal(FakeSocket.instances.length, 1);
  tick(1);
  assert.equal(FakeSocket.instances.length, 2);
  client.close();
});

test('revoked: the client stops and says so', async () => {
  const client = modern();
  const seen = record(client, 'revoked', 'close');
  latest().accept();
  latest().deliver({ type: 'revoked' });
  tick(60000);
  assert.equal(FakeSocket.instances.length, 1);
  assert.equal(client.state, 'closed');
  assert.deepEqual(seen.map(([e]) => e), ['revoked', 'close']);
  assert.equal(seen[1][1].willReconnect, false);
  await assert.rejects(client.ready(), /closed/);
});

test('subscriptions change without a new object', async () => {
  const client = modern();
  latest().accept();
  const done = client.subscribe('group');
  assert.equal(latest().url, 'ws://h/ws/chat?subscribe-broadcast&subscribe-user&subscribe-group');
  latest().accept();
  await done;
  const pending = [client.unsubscribe('broadcast', 'user')];
  assert.equal(latest().url, 'ws://h/ws/chat?subscribe-group');
  pending.push(client.subscribe({ facility: 'news', subscribe: ['broadcast'], publish: ['broadcast'] }));
  assert.equal(latest().url, 'ws://h/ws/news?subscribe-broadcast&publish-broadcast');
  assert.equal(client.facility, 'news');
  assert.throws(() => client.subscribe('nobody'), /unknown audience/);
  assert.equal(FakeSocket.instances.length, 4);
  client.close();
  for (const p of pending) await assert.rejects(p, /closed/, 'closed before those sockets opened');
});

test('a throwing listener does not break the client', () => {
  const client = modern();
  const got = [];
  client.on('message', () => { throw new Error('page bug'); });
  client.on('message', (m) => got.push(m.data));
  latest().accept();
  latest().deliver({ type: 'message', channel: 'chat', audience: 'broadcast', id: null, data: 'x' });
  assert.deepEqual(got, ['x']);
  // The listener's error is rethrown asynchronously (visible on the console), not inside the client.
  assert.throws(() => tick(0), /page bug/);
  client.close();
});
