// Types of ws4redis.js (global `WS4Redis`, ES module `ws4redis.mjs`). See docs/client.md.

export type Audience = 'broadcast' | 'user' | 'group' | 'session';
export type ProtocolName = 'ws4redis.v2' | 'v2' | 'legacy' | null;
export type ClientState = 'idle' | 'connecting' | 'open' | 'stale' | 'reconnecting' | 'closed';

/** One message as the page receives it. Legacy and binary frames carry no audience and no id. */
export interface Message {
  /** The facility. */
  channel: string | null;
  audience: Audience | null;
  /** Present for group messages: which of the user's groups. */
  group?: string;
  /** The message id (ws4redis.v2 with history), tracked per stream for `resume`; null otherwise. */
  id: string | null;
  data: string | ArrayBuffer | Blob;
}

export interface BackoffOptions {
  /** Ceiling of the first delay, ms (default 1000). */
  base?: number;
  /** Largest ceiling, ms (default 30000). */
  cap?: number;
  /** Growth of the ceiling per failed attempt (default 2). */
  factor?: number;
  /** Source of randomness in [0, 1) (default Math.random): tests make it deterministic. */
  random?: () => number;
}

export interface HeartbeatOptions {
  /** ms between pings (default 5000). */
  interval?: number;
  /** Silent intervals before the 'stale' state (default 2). */
  staleAfter?: number;
  /** Silent intervals before the socket is dropped and reconnected (default 3). */
  maxMissed?: number;
}

export interface CloseInfo {
  code: number;
  reason: string;
  wasClean: boolean;
  willReconnect: boolean;
  /** When reconnecting: the delay chosen (ms), the attempt number and the backoff ceiling it was drawn under. */
  delay?: number;
  attempt?: number;
  ceiling?: number;
}

export interface RecoveredInfo {
  /** false: messages may have been missed (no history yet, or the server lost its broker link). */
  recovered: boolean;
  reason?: 'not_recovered' | 'reconnected';
  detail: Record<string, unknown>;
}

/** The server's answer to an in-band subscribe/unsubscribe (ws4redis.v2): the audiences it granted. */
export interface SubscriptionAnswer {
  type: 'subscribed' | 'unsubscribed';
  facility: string;
  audiences: Audience[];
}

export interface Events {
  open: { reconnect: boolean; protocol: string; url: string };
  close: CloseInfo;
  message: Message;
  stale: { missed: number };
  fresh: Record<string, never>;
  recovered: RecoveredInfo;
  pong: { rtt: number | null };
  welcome: Record<string, unknown>;
  shutdown: { reconnect_in?: number } & Record<string, unknown>;
  revoked: Record<string, unknown>;
  error: { reason?: string } & Record<string, unknown>;
  state: ClientState;
  subscription: SubscriptionAnswer;
}

export interface Options {
  // -- the original's options (their presence selects the legacy protocol unless `protocol` says otherwise)
  uri?: string;
  connecting?: () => void;
  connected?: () => void;
  disconnected?: (event: CloseEvent | { code: number; reason: string; wasClean: boolean }) => void;
  receive_message?: (data: string | ArrayBuffer | Blob) => void;
  heartbeat_msg?: string | null;
  // -- modern options
  /** The full websocket URL (alternative to facility/subscribe/publish). */
  url?: string;
  facility?: string;
  /** Default ['broadcast']. */
  subscribe?: Audience | Audience[];
  publish?: Audience | Audience[];
  echo?: boolean;
  /** Default: ws(s)://<this page's host>/ws/ */
  base?: string;
  /** Default: legacy with the original's options, else ws4redis.v2. */
  protocol?: ProtocolName;
  /** false turns v2 pings off. */
  heartbeat?: HeartbeatOptions | false;
  backoff?: BackoffOptions;
  /** ms a socket must stay open before the backoff starts again from its first step (default 10000). */
  healthyAfter?: number;
  /** ms a connection attempt may take before it is abandoned and retried (default 10000). */
  connectTimeout?: number;
  /** Default true; false: nothing happens until subscribe(). */
  autoConnect?: boolean;
  /** A WebSocket implementation (tests, Node). */
  WebSocket?: typeof WebSocket;
}

export declare class Backoff {
  constructor(options?: BackoffOptions);
  attempt: number;
  ceiling(): number;
  next(): number;
  reset(): void;
}

export declare class HeartbeatMonitor {
  constructor(options?: { staleAfter?: number; maxMissed?: number });
  missed: number;
  alive(): boolean;
  tick(): 'ok' | 'stale' | 'waiting' | 'dead';
}

export interface WS4RedisClient {
  readonly options: Options;
  readonly protocol: 'ws4redis.v2' | 'legacy';
  readonly url: string;
  readonly facility: string | null;
  readonly state: ClientState;
  /** Last round-trip time of a ping, ms. */
  readonly rtt: number | null;
  /** Stream key ('user:chat', 'group:red:chat', ...) -> last id seen. */
  readonly lastIds: Record<string, string>;

  on<K extends keyof Events>(event: K, listener: (info: Events[K]) => void): () => void;
  off<K extends keyof Events>(event: K, listener: (info: Events[K]) => void): this;
  ready(): Promise<WS4RedisClient>;
  send(data: string | object | ArrayBuffer | ArrayBufferView | Blob): boolean;
  ping(): Promise<number | null>;
  subscribe(change: Pick<Options, 'facility' | 'subscribe' | 'publish' | 'echo'>): Promise<WS4RedisClient>;
  /** In-band over ws4redis.v2 once the server greeted the socket (resolves with its answer); else by reconnecting. */
  subscribe(...audiences: Audience[]): Promise<WS4RedisClient | SubscriptionAnswer>;
  unsubscribe(...audiences: Audience[]): Promise<WS4RedisClient | SubscriptionAnswer>;
  /** Listen to another facility on the same socket (ws4redis.v2); asked for again after every reconnect. */
  addFacility(facility: string, audiences?: Audience[]): Promise<SubscriptionAnswer>;
  removeFacility(facility: string, audiences?: Audience[]): Promise<SubscriptionAnswer | null>;
  close(code?: number, reason?: string): void;

  // the original API
  /** Never throws: before the socket opens (or while it reconnects) up to 100 messages wait and go out in order at
   *  open; more, or any after close(), are dropped with a console warning. */
  send_message(message: string | ArrayBuffer | Blob): void;
  get_state(): 0 | 1 | 2 | 3;
  is_connecting(): boolean;
  is_connected(): boolean;
  is_closing(): boolean;
  is_closed(): boolean;
}

export interface WS4RedisConstructor {
  new (options: Options): WS4RedisClient;
  (options: Options, jQuery?: unknown): WS4RedisClient;
  readonly V2: 'ws4redis.v2';
  readonly LEGACY: 'legacy';
  readonly Backoff: typeof Backoff;
  readonly HeartbeatMonitor: typeof HeartbeatMonitor;
  suggestedDelay(suggested: number, random?: () => number): number;
  chooseProtocol(options: Options): 'ws4redis.v2' | 'legacy';
  buildUrl(options: Options, location?: { protocol: string; host: string }): string;
  streamKey(message: Pick<Message, 'channel' | 'audience' | 'group'>): string;
  /** The console message of a page whose sockets keep closing before they open (likely causes from the URL). */
  refusalAdvice(url: string, attempts: number, delay: number): string;
  /** send_message() calls kept before the socket opens (more are dropped with a warning). */
  readonly OUTBOX_LIMIT: number;
  /** Consecutive never-opened attempts after which a page that never connected is told why and backs off. */
  readonly REFUSED_AFTER: number;
}

export declare const WS4Redis: WS4RedisConstructor;
export default WS4Redis;

declare global {
  // eslint-disable-next-line no-var
  var WS4Redis: WS4RedisConstructor;
}
