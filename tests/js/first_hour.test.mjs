// What a developer meets in the first hour (issue 20): send_message() right after WS4Redis(...), and a page whose
// handshakes are refused (the browser hides the 403: every attempt just closes before opening).
import { afterEach, beforeEach, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { FakeSocket, WS4Redis, latest, reset } from './fakes.mjs';

let logged;
beforeEach(() => {
  reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  logged = { warn: [], error: [] };
  mock.method(console, 'warn', (...args) => logged.warn.push(args.join(' ')));
  mock.method(console, 'error', (...args) => logged.error.push(args.join(' ')));
});
afterEach(() => {
  mock.timers.reset();
  mock.restoreAll();
});

test('send_message() before the socket opens is kept and sent in order at open, never thrown', () => {
  const ws = WS4Redis({ uri: 'ws://h/ws/foobar?subscribe-broadcast&publish-broadcast&echo', WebSocket: FakeSocket });
  ws.send_message('A message');
  ws.send_message('another');
  assert.deepEqual(latest().sent, []);
  latest().accept();
  assert.deepEqual(latest().sent, ['A message', 'another']);
  ws.send_message('third');
  assert.deepEqual(latest().sent, ['A message', 'another', 'third']);
  assert.deepEqual(logged.warn, []);
});

test('send_message() while reconnecting waits for the next socket; v2 wraps it as a publish', () => {
  const client = new WS4Redis({ facility: 'chat', publish: ['broadcast'], base: 'ws://h/ws/', WebSocket: FakeSocket,
    heartbeat: false, backoff: { base: 100, cap: 1000, random: () => 0.5 } });
  latest().accept();
  latest().drop();
  client.send_message('while away');
  mock.timers.tick(100);
  latest().accept();
  assert.deepEqual(latest().sentJSON(), [{ type: 'resume', since: {} }, { type: 'publish', data: 'while away' }]);
});

test('the pre-open outbox is bounded: beyond the limit, and after close(), messages are dropped with a warning', () => {
  const ws = WS4Redis({ uri: 'ws://h/ws/f?publish-broadcast', WebSocket: FakeSocket });
  for (let i = 0; i <= WS4Redis.OUTBOX_LIMIT; i++) ws.send_message(`m${i}`);
  assert.equal(logged.warn.length, 1);
  assert.match(logged.warn[0], /dropped 1 message/);
  ws.close();
  assert.match(logged.warn[1], new RegExp(`dropped ${WS4Redis.OUTBOX_LIMIT} message.*close\\(\\) came before`));
  ws.send_message('after close');
  assert.equal(logged.warn.length, 3);
  assert.deepEqual(latest().sent, []);
});

test('a page refused at every handshake says why on the console, once, and backs off to the cap', () => {
  const client = new WS4Redis({ uri: 'ws://h/ws/chat?subscribe-broadcast&subscribe-user', WebSocket: FakeSocket,
    backoff: { base: 100, cap: 8000, random: () => 0.5 } });
  const delays = [];
  client.on('close', (info) => delays.push(info.delay));
  for (let i = 0; i < 5; i++) {
    latest().drop(1006);  // what a browser shows for a 403: closed, never opened
    mock.timers.tick(delays[delays.length - 1]);
  }
  assert.deepEqual(delays.slice(0, 2), [50, 100], 'ordinary backoff for the first failures');
  assert.ok(delays.slice(2).every((d) => d >= 4000 && d <= 8000), `then half the cap to the cap: ${delays}`);
  assert.equal(logged.error.length, 1, 'said once per streak');
  assert.match(logged.error[0], /closed 3 times without ever opening/);
  assert.match(logged.error[0], /subscribe-user needs a logged-in user/);
  assert.match(logged.error[0], /ALLOWED_HOSTS/);
  assert.match(logged.error[0], /before "django.contrib.staticfiles"/);
  client.close();
});

test('a page that was connected before keeps the ordinary backoff through a server restart', () => {
  const client = new WS4Redis({ facility: 'chat', base: 'ws://h/ws/', WebSocket: FakeSocket, heartbeat: false,
    backoff: { base: 100, cap: 8000, random: () => 0.5 } });
  const delays = [];
  client.on('close', (info) => delays.push(info.delay));
  latest().accept();
  for (let i = 0; i < 5; i++) {
    latest().drop(1006);
    mock.timers.tick(delays[delays.length - 1]);
  }
  assert.deepEqual(delays, [50, 100, 200, 400, 800]);
  assert.deepEqual(logged.error, []);
  client.close();
});
