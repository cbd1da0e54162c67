// In-band subscribe/unsubscribe over ws4redis.v2 (several facilities on one socket), against a scripted socket.
import { afterEach, beforeEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeSocket, WS4Redis, latest, reset } from './fakes.mjs';

beforeEach(() => {
  reset();
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
});
afterEach(() => mock.timers.reset());

function greeted() {
  const client = new WS4Redis({ facility: 'chat', subscribe: ['broadcast'], base: 'ws://h/ws/', WebSocket: FakeSocket,
    heartbeat: false });
  latest().accept();
  latest().deliver({ type: 'welcome', facility: 'chat', subscribe: ['broadcast'], publish: [] });
  return client;
}

test('subscribe and unsubscribe of audiences go in-band once the server greeted us', async () => {
  const client = greeted();
  const sock = latest();
  const added = client.subscribe('user');
  assert.equal(FakeSocket.instances.length, 1, 'no reconnect');
  assert.deepEqual(sock.sentJSON().at(-1), { type: 'subscribe', facility: 'chat', audiences: ['user'] });
  assert.equal(client.url, 'ws://h/ws/chat?subscribe-broadcast&subscribe-user', 'a reconnect asks for the same');
  sock.deliver({ type: 'subscribed', facility: 'chat', audiences: ['user'] });
  assert.deepEqual(await added, { type: 'subscribed', facility: 'chat', audiences: ['user'] });
  const removed = client.unsubscribe('broadcast');
  assert.deepEqual(sock.sentJSON().at(-1), { type: 'unsubscribe', facility: 'chat', audiences: ['broadcast'] });
  sock.deliver({ type: 'unsubscribed', facility: 'chat', audiences: ['broadcast'] });
  await removed;
  assert.equal(client.url, 'ws://h/ws/chat?subscribe-user');
  assert.throws(() => client.subscribe('nobody'), /unknown audience/);
});

test('addFacility switches facilities on one socket, is refused like a connection, and survives reconnects',
  async () => {
    const client = greeted();
    const sock = latest();
    const prices = client.addFacility('prices', ['broadcast', 'user']);
    assert.deepEqual(sock.sentJSON().at(-1), { type: 'subscribe', facility: 'prices', audiences: ['broadcast', 'user'] });
    sock.deliver({ type: 'subscribed', facility: 'prices', audiences: ['broadcast'] });
    assert.deepEqual((await prices).audiences, ['broadcast'], 'the audiences the server granted');
    const secret = client.addFacility('secret', ['session']);
    sock.deliver({ type: 'error', reason: 'subscribe-session needs a session', request: 'subscribe', facility: 'secret' });
    await assert.rejects(secret, /refused: subscribe-session needs a session/);
    client.removeFacility('secret').catch(() => {});  // unanswered here: rejected when the socket drops
    const gone = client.removeFacility('chat');
    sock.deliver({ type: 'unsubscribed', facility: 'chat', audiences: [] });
    await gone;
    // Reconnect: the new socket asks for the added facility again, right after the server's welcome.
    sock.drop();
    mock.timers.tick(60000);  // the backoff delay, whatever it drew
    const next = latest();
    assert.notEqual(next, sock);
    next.accept();
    next.deliver({ type: 'welcome', facility: 'chat', subscribe: ['broadcast'], publish: [] });
    assert.deepEqual(next.sentJSON().filter((m) => m.type === 'subscribe'),
      [{ type: 'subscribe', facility: 'prices', audiences: ['broadcast', 'user'] }]);
    client.close();
  });

test('without a welcome (an older server) audience changes still reconnect with a new URL', () => {
  const client = new WS4Redis({ facility: 'chat', base: 'ws://h/ws/', WebSocket: FakeSocket, heartbeat: false });
  latest().accept();
  client.subscribe('user').catch(() => {});
  assert.equal(FakeSocket.instances.length, 2);
  assert.equal(latest().url, 'ws://h/ws/chat?subscribe-broadcast&subscribe-user');
  client.close();
});

test('legacy clients cannot add facilities', async () => {
  const client = WS4Redis({ uri: 'ws://h/ws/foo?subscribe-broadcast', WebSocket: FakeSocket, heartbeat_msg: '--hb--' });
  await assert.rejects(client.addFacility('x'), /needs ws4redis.v2/);
  client.close();
});
