// Requests whose outcome can be unknown (answered `unavailable`, or the link dropped before the
// reply) carry a client id and are sent again with it until the answer says what happened: the
// server applies an id at most once and answers a retry as it answered the first attempt,
// marked `duplicate`. Creates (`cid`) and chat lines (`lid`) go through here; moves have
// outbox.js, which also keeps them across reconnects and rounds.

import { Disconnected } from './connection.js';

export const UNAVAILABLE_RETRY_MS = 1000;

// A fresh client id: `prefix` and 24 hex digits.
export function newClientId(prefix) {
  // crypto.randomUUID needs a secure context; getRandomValues works on plain http too.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return prefix + [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

// Sends `msg`, which carries its client id, until the answer is not `unavailable`, waiting
// `retry_after_ms` (or a second) between attempts; a link that drops meanwhile is waited for
// and the same message sent again. `retrying(err)` hears of each `unavailable`.
export async function requestOnce(conn, msg, retrying) {
  for (;;) {
    let reply;
    try {
      reply = await conn.request(msg);
    } catch (e) {
      if (!(e instanceof Disconnected)) throw e;
      await conn.whenConnected();
      continue;
    }
    if (reply.type !== 'error' || reply.code !== 'unavailable') return reply;
    retrying(reply);
    const wait = reply.retry_after_ms ?? UNAVAILABLE_RETRY_MS;
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}
