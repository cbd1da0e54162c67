// A scripted WebSocket for the client's unit tests: the test plays the server, nothing touches the network.
import '../../ws4redis/static/ws4redis/ws4redis.mjs';

export const WS4Redis = globalThis.WS4Redis;

export class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = FakeSocket.CONNECTING;
    this.sent = [];
    this.closedWith = null;
    this.binaryType = 'blob';
    FakeSocket.instances.push(this);
  }

  send(data) {
    if (this.readyState !== FakeSocket.OPEN) throw new Error('InvalidStateError: not open');
    this.sent.push(data);
  }

  close(code, reason) {
    this.closedWith = { code, reason };
    if (this.readyState < FakeSocket.CLOSING) this.readyState = FakeSocket.CLOSING;
  }

  // -- what the "server" does
  accept() {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.({});
  }

  deliver(data) {
    this.onmessage?.({ data: typeof data === 'string' || data instanceof ArrayBuffer ? data : JSON.stringify(data) });
  }

  drop(code = 1006) {
    this.readyState = FakeSocket.CLOSED;
    this.onclose?.({ code, reason: '', wasClean: false });
  }

  sentJSON() {
    return this.sent.map((s) => JSON.parse(s));
  }
}

export function latest() {
  return FakeSocket.instances[FakeSocket.instances.length - 1];
}

export function reset() {
  FakeSocket.instances = [];
}

/** A random source returning the given values in turn (then the last one forever). */
export function sequence(...values) {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)];
}
