// Moves waiting for their ack. Each move has a unique `mid`; a move whose fate is unknown (the
// link dropped before the ack) or that met `unavailable` is sent again with the same `mid`,
// which the server applies at most once, so a retry can never play a second move. Each carries
// the version its board showed when it was chosen: a retry that reaches the server after the
// next round began is refused (`game_over`), never played on a board the player did not see.

import { Disconnected } from './connection.js';
import { UNAVAILABLE_RETRY_MS, newClientId } from './retry.js';

export class Outbox {
  // hooks: version(game) -> the version the board shows; changed(); failed(entry, error,
  // retrying): retrying is true when the move is sent again by itself.
  constructor(conn, hooks) {
    this.conn = conn;
    this.hooks = hooks;
    this.entries = new Map();
  }

  pendingCell(game) {
    return this.entries.get(game)?.cell ?? null;
  }

  has(game) {
    return this.entries.has(game);
  }

  play(game, cell) {
    if (this.entries.has(game)) return;
    const entry = {
      game,
      cell,
      mid: newClientId('m-'),
      version: this.hooks.version(game),
      inFlight: false,
      timer: null,
    };
    this.entries.set(game, entry);
    this.hooks.changed();
    this.send(entry);
  }

  drop(game) {
    const entry = this.entries.get(game);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.entries.delete(game);
    this.hooks.changed();
  }

  // After a reconnect (the welcome): every unacknowledged move goes again, same mid.
  resendAll() {
    for (const entry of this.entries.values()) {
      if (!entry.inFlight) this.send(entry);
    }
  }

  async send(entry) {
    clearTimeout(entry.timer);
    entry.timer = null;
    if (!this.conn.connected) return;
    entry.inFlight = true;
    let reply;
    try {
      reply = await this.conn.request({
        type: 'move',
        game: entry.game,
        cell: entry.cell,
        mid: entry.mid,
        version: entry.version,
      });
    } catch (e) {
      entry.inFlight = false;
      if (!(e instanceof Disconnected)) throw e;
      return;
    } finally {
      entry.inFlight = false;
    }
    if (this.entries.get(entry.game) !== entry) return;
    if (reply.type === 'ack') {
      this.drop(entry.game);
    } else if (reply.code === 'unavailable' || reply.code === 'rate_limited') {
      const wait = reply.retry_after_ms ?? UNAVAILABLE_RETRY_MS;
      entry.timer = setTimeout(() => this.send(entry), wait);
      this.hooks.failed(entry, reply, true);
    } else {
      this.drop(entry.game);
      this.hooks.failed(entry, reply, false);
    }
  }
}
