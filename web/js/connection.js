// The WebSocket to the server: says hello (with the session token and the games to resume),
// matches replies to requests by `req`, keeps the link alive, and reconnects by itself with
// backoff. It knows nothing about games: every message goes to `onMessage`.

import { CLOSE, REPLIES } from './protocol.js';
import { reconnectDelay, MAX_MS } from './backoff.js';

// A handshake (TCP, upgrade, hello) that takes longer than this is abandoned and retried.
const CONNECT_TIMEOUT_MS = 10000;
// A server that died without closing (power cut, network partition) sends no close frame:
// an unanswered ping is the only way to notice.
const PING_EVERY_MS = 20000;
const PONG_TIMEOUT_MS = 10000;

export class Disconnected extends Error {
  constructor() {
    super('not connected');
    this.name = 'Disconnected';
  }
}

export class Connection {
  // hooks: hello() -> fields of the hello message; onWelcome(msg); onMessage(msg);
  // onState({ state, attempt, nextAttemptAt, code }).
  constructor(url, hooks) {
    this.url = url;
    this.hooks = hooks;
    this.ws = null;
    this.welcomed = false;
    this.attempt = 0;
    // Attempts since the last welcome, as shown to the player.
    this.tries = 0;
    this.nextReq = 1;
    this.pending = new Map();
    // Resolved at the next welcome: requests waiting for the link to come back.
    this.connectWaiters = [];
    this.timer = null;
    this.pingTimer = null;
    this.everConnected = false;
    window.addEventListener('online', () => this.reconnectNow());
    window.addEventListener('offline', () => {
      if (this.ws) this.drop(this.ws);
    });
  }

  get connected() {
    return this.welcomed;
  }

  start() {
    this.open();
  }

  // Drops the current socket (if any) and connects again at once: "Reconnect now", a name
  // change (only a hello can rename) and the browser coming back online.
  reconnectNow() {
    this.attempt = 0;
    if (this.ws) this.drop(this.ws, { immediate: true });
    else this.open();
  }

  // Resolves once the link is up and the hello answered (at once if it is).
  whenConnected() {
    if (this.welcomed) return Promise.resolve();
    return new Promise((resolve) => this.connectWaiters.push(resolve));
  }

  // Sends a request and resolves with its reply (`ack`, `snapshot`, `error`, ...). Rejects
  // with `Disconnected` when the link is down or drops before the reply.
  request(msg) {
    if (!this.welcomed) return Promise.reject(new Disconnected());
    return this.sendRequest(msg);
  }

  sendRequest(msg) {
    const req = this.nextReq++;
    return new Promise((resolve, reject) => {
      this.pending.set(req, { resolve, reject });
      try {
        this.ws.send(JSON.stringify({ ...msg, req }));
      } catch {
        this.pending.delete(req);
        reject(new Disconnected());
      }
    });
  }

  open() {
    clearTimeout(this.timer);
    this.timer = null;
    if (navigator.onLine === false) {
      this.emit('offline');
      return;
    }
    const ws = new WebSocket(this.url);
    this.ws = ws;
    this.welcomed = false;
    this.emit(this.everConnected ? 'reconnecting' : 'connecting');
    const giveUp = setTimeout(() => this.drop(ws), CONNECT_TIMEOUT_MS);
    ws.onopen = () => this.hello(ws, giveUp);
    ws.onmessage = (e) => this.onFrame(ws, e.data);
    ws.onclose = (e) => {
      clearTimeout(giveUp);
      this.closed(ws, e.code);
    };
  }

  async hello(ws, giveUp) {
    let reply;
    try {
      reply = await this.sendRequest({ type: 'hello', ...this.hooks.hello() });
    } catch {
      return;
    }
    clearTimeout(giveUp);
    if (ws !== this.ws) return;
    if (reply.type !== 'welcome') {
      // Minting a session is rate limited per address: wait as long as the server says. A
      // hello Redis could not answer (`unavailable`: an outage, a failover) is retried like a
      // lost link, with backoff, perhaps on another instance; anything else would be refused
      // again soon.
      let wait = MAX_MS;
      if (reply.code === 'rate_limited') wait = reply.retry_after_ms ?? MAX_MS;
      if (reply.code === 'unavailable') wait = reply.retry_after_ms ?? reconnectDelay(this.attempt++);
      this.drop(ws, { delay: wait });
      return;
    }
    this.welcomed = true;
    this.everConnected = true;
    this.attempt = 0;
    this.tries = 0;
    this.emit('connected');
    this.heartbeat(ws);
    this.hooks.onWelcome(reply);
    // After the page has caught up with the welcome, so that what waited is sent on top of it.
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const resolve of waiters) resolve();
  }

  heartbeat(ws) {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(async () => {
      if (ws !== this.ws || !this.welcomed) return;
      const dead = setTimeout(() => this.drop(ws), PONG_TIMEOUT_MS);
      try {
        await this.sendRequest({ type: 'ping' });
        clearTimeout(dead);
        this.heartbeat(ws);
      } catch {
        clearTimeout(dead);
      }
    }, PING_EVERY_MS);
  }

  onFrame(ws, data) {
    if (ws !== this.ws) return;
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    this.hooks.onMessage(msg);
    if (REPLIES.has(msg.type) && msg.req != null) {
      const waiter = this.pending.get(msg.req);
      if (waiter) {
        this.pending.delete(msg.req);
        waiter.resolve(msg);
      }
    }
  }

  // Abandons a socket without waiting for its closing handshake (a dead server never
  // answers one) and schedules the next attempt.
  drop(ws, { immediate = false, delay } = {}) {
    ws.onopen = ws.onmessage = ws.onclose = null;
    try {
      ws.close();
    } catch {
      // Already closed.
    }
    this.closed(ws, 1006, immediate ? 0 : delay);
  }

  closed(ws, code, delay) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.welcomed = false;
    clearTimeout(this.pingTimer);
    for (const { reject } of this.pending.values()) reject(new Disconnected());
    this.pending.clear();
    if (delay == null) delay = this.delayFor(code);
    this.tries += 1;
    if (navigator.onLine === false) {
      this.emit('offline', { code });
      return;
    }
    const nextAttemptAt = Date.now() + delay;
    this.emit('reconnecting', { code, nextAttemptAt });
    this.timer = setTimeout(() => this.open(), delay);
  }

  delayFor(code) {
    if (code === CLOSE.SERVICE_RESTART) {
      // Another instance answers at once; the attempt count stays, in case none does.
      return 0;
    }
    if (code === CLOSE.POLICY) {
      // Closed for abuse or for a missing hello: coming straight back would only repeat it.
      this.attempt += 1;
      return MAX_MS;
    }
    return reconnectDelay(this.attempt++);
  }

  emit(state, extra = {}) {
    this.hooks.onState({ state, attempt: this.tries, ...extra });
  }
}
