// Pure parts of ws4redis.js: backoff, heartbeat budget, protocol choice, URLs, frames.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WS4Redis, sequence } from './fakes.mjs';

test('backoff ceilings grow exponentially up to the cap', () => {
  const b = new WS4Redis.Backoff({ base: 100, cap: 1000, random: () => 0.999999 });
  const ceilings = [];
  for (let i = 0; i < 6; i++) {
    ceilings.push(b.ceiling());
    const d = b.next();
    assert.ok(d < ceilings[i] && d > ceilings[i] * 0.99);
  }
  assert.deepEqual(ceilings, [100, 200, 400, 800, 1000, 1000]);
});

test('backoff is full jitter: anywhere in [0, ceiling), not ceiling plus noise', () => {
  const b = new WS4Redis.Backoff({ base: 100, cap: 1000, random: sequence(0, 0.5) });
  assert.equal(b.next(), 0);
  assert.equal(b.next(), 100); // 0.5 * 200
  const wide = new WS4Redis.Backoff({ base: 1000, cap: 1000 });
  const samples = Array.from({ length: 2000 }, () => wide.next());
  assert.ok(Math.min(...samples) >= 0 && Math.min(...samples) < 50, 'some clients come back almost at once');
  assert.ok(Math.max(...samples) < 1000 && Math.max(...samples) > 950, 'others wait nearly the whole window');
  const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
  assert.ok(mean > 450 && mean < 550, `uniform: mean ${mean}`);
});

test('backoff reset starts again from the first window', () => {
  const b = new WS4Redis.Backoff({ base: 100, cap: 10000 });
  b.next(); b.next(); b.next();
  assert.equal(b.ceiling(), 800);
  b.reset();
  assert.equal(b.ceiling(), 100);
});

test('a suggested delay is honoured and spread over one more such delay', () => {
  assert.equal(WS4Redis.suggestedDelay(2000, () => 0), 2000);
  assert.equal(WS4Redis.suggestedDelay(2000, () => 0.5), 3000);
  assert.equal(WS4Redis.suggestedDelay(undefined, () => 0.5), 0);
});

test('heartbeat budget: ok, then stale, then dead; anything heard resets it', () => {
  const m = new WS4Redis.HeartbeatMonitor({ staleAfter: 2, maxMissed: 4 });
  assert.equal(m.tick(), 'ok'); // heard since open
  assert.equal(m.tick(), 'ok'); // missed 1
  assert.equal(m.tick(), 'stale'); // missed 2
  assert.equal(m.tick(), 'waiting');
  assert.equal(m.alive(), true, 'was stale, now fresh');
  assert.equal(m.tick(), 'ok');
  assert.equal(m.tick(), 'ok');
  assert.equal(m.tick(), 'stale');
  assert.equal(m.tick(), 'waiting');
  assert.equal(m.tick(), 'dead');
  assert.equal(new WS4Redis.HeartbeatMonitor({ staleAfter: 9, maxMissed: 3 }).staleAfter, 3, 'stale never after dead');
});

test('the original options select the legacy protocol; modern ones v2', () => {
  assert.equal(WS4Redis.chooseProtocol({ uri: 'ws://x/ws/a', receive_message() {} }), 'legacy');
  assert.equal(WS4Redis.chooseProtocol({ uri: 'ws://x/ws/a' }), 'legacy');
  assert.equal(WS4Redis.chooseProtocol({ url: 'ws://x/ws/a' }), 'ws4redis.v2');
  assert.equal(WS4Redis.chooseProtocol({ facility: 'a' }), 'ws4redis.v2');
  assert.equal(WS4Redis.chooseProtocol({ uri: 'ws://x/ws/a', protocol: 'v2' }), 'ws4redis.v2');
  assert.equal(WS4Redis.chooseProtocol({ facility: 'a', protocol: 'legacy' }), 'legacy');
  assert.throws(() => WS4Redis.chooseProtocol({ protocol: 'v3' }), /unknown protocol/);
});

test('URLs are built from facility and audiences in the canonical order', () => {
  const loc = { protocol: 'https:', host: 'example.com' };
  assert.equal(WS4Redis.buildUrl({ facility: 'chat' }, loc), 'wss://example.com/ws/chat?subscribe-broadcast');
  assert.equal(
    WS4Redis.buildUrl({ facility: 'chat', subscribe: ['user', 'broadcast', 'user'], publish: 'group', echo: true,
      base: 'ws://h:1/socket' }, loc),
    'ws://h:1/socket/chat?subscribe-broadcast&subscribe-user&publish-group&echo',
  );
  assert.equal(WS4Redis.buildUrl({ uri: 'ws://h/ws/x?subscribe-user' }), 'ws://h/ws/x?subscribe-user');
  assert.throws(() => WS4Redis.buildUrl({ facility: 'a', subscribe: ['everyone'] }, loc), /unknown audience/);
});

test('v2 frames: messages, control messages, invalid frames; legacy heartbeats', () => {
  const msg = WS4Redis.parseFrame(
    '{"type":"message","channel":"chat","audience":"group","group":"red","id":"7-0","data":"hi"}', 'ws4redis.v2');
  assert.deepEqual(msg, { kind: 'message',
    message: { channel: 'chat', audience: 'group', group: 'red', id: '7-0', data: 'hi' } });
  assert.equal(WS4Redis.streamKey(msg.message), 'group:red:chat');
  assert.equal(WS4Redis.streamKey({ channel: 'chat', audience: 'user' }), 'user:chat');
  assert.deepEqual(WS4Redis.parseFrame('{"type":"shutdown","reconnect_in":500}', 'ws4redis.v2'),
    { kind: 'shutdown', body: { type: 'shutdown', reconnect_in: 500 } });
  assert.equal(WS4Redis.parseFrame('hello', 'ws4redis.v2').kind, 'invalid');
  assert.equal(WS4Redis.parseFrame('[1]', 'ws4redis.v2').kind, 'invalid');
  assert.deepEqual(WS4Redis.parseFrame('--hb--', 'legacy', '--hb--'), { kind: 'heartbeat' });
  assert.deepEqual(WS4Redis.parseFrame('{"type":"pong"}', 'legacy', '--hb--', 'chat').message,
    { channel: 'chat', audience: null, id: null, data: '{"type":"pong"}' }, 'legacy passes payloads through');
  const bytes = new ArrayBuffer(2);
  assert.equal(WS4Redis.parseFrame(bytes, 'ws4redis.v2').message.data, bytes);
});

test('client envelopes', () => {
  assert.deepEqual(JSON.parse(WS4Redis.envelopes.publish('x')), { type: 'publish', data: 'x' });
  assert.deepEqual(JSON.parse(WS4Redis.envelopes.ping(12.5)), { type: 'ping', t: 12.5 });
  assert.deepEqual(JSON.parse(WS4Redis.envelopes.resume({ 'user:chat': '3-0' })),
    { type: 'resume', since: { 'user:chat': '3-0' } });
});
