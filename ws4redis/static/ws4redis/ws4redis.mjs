// ES module entry of ws4redis.js: `import { WS4Redis } from "/static/ws4redis/ws4redis.mjs"`.
// ws4redis.js is the one implementation; importing it for its effect defines `globalThis.WS4Redis` in browsers and in
// Node alike, which is why this file re-exports the global rather than a binding (a classic script cannot `export`).
import './ws4redis.js';

export const WS4Redis = globalThis.WS4Redis;
export default WS4Redis;
