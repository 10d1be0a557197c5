// What the player's other clicks ask of the server: a new game (rated or casual), a game
// against the computer, quick match and its cancel, rematch, resign and cancelling a game, a
// chat line. All go through `ask`, which every
// request made on the player's behalf uses, so a refusal is always shown and recovered from
// the same way; a new game and a chat line carry a client id and are retried with it until
// their outcome is known (`askOnce`).

import { Disconnected } from './connection.js';
import { notify } from './notice.js';
import { errorText } from './protocol.js';
import { newClientId, requestOnce } from './retry.js';

// `enter(snapshot)` puts a game on screen (routing.js); `recover(err, game)` is what an error
// says about the page's view (recovery.js).
export function createActions({ page, conn, lobby, enter, recover }) {
  async function ask(msg) {
    try {
      const reply = await conn.request(msg);
      if (reply.type === 'error') {
        notify(errorText(reply));
        recover(reply, msg.game);
      }
      return reply;
    } catch (e) {
      if (!(e instanceof Disconnected)) throw e;
      notify('Not connected: wait for the connection to come back.');
      return null;
    }
  }

  // A request that must take effect once: sent again with its client id after `unavailable`
  // or a dropped link (retry.js), then answered as `ask` answers.
  async function askOnce(msg) {
    const reply = await requestOnce(conn, msg, (err) => notify(errorText(err)));
    if (reply.type === 'error') {
      notify(errorText(reply));
      recover(reply, msg.game);
    }
    return reply;
  }

  async function create() {
    const msg = { type: 'create', cid: newClientId('c-') };
    if (lobby.rated()) msg.rated = true;
    const reply = await askOnce(msg);
    if (reply.type === 'snapshot') enter(reply);
  }

  // From the lobby, or instead of waiting longer in quick match: the queue is left first.
  async function playComputer(level) {
    if (page.queued) await cancelMatch();
    const reply = await askOnce({ type: 'create', cid: newClientId('c-'), computer: level });
    if (reply.type === 'snapshot') enter(reply);
  }

  async function quickMatch() {
    if (page.queued) return;
    page.queued = true;
    lobby.setQueued(true);
    const reply = await ask({ type: 'quick_match' });
    if (reply?.type === 'ack' && Number.isFinite(reply.offer_computer_ms) && page.queued) {
      lobby.armOffer(reply.offer_computer_ms);
    }
    if (reply?.type === 'error' && reply.code !== 'already_queued') {
      page.queued = false;
      lobby.setQueued(false);
    } else if (!reply) {
      page.queued = false;
      lobby.setQueued(false);
    }
  }

  async function cancelMatch() {
    page.queued = false;
    lobby.setQueued(false);
    await ask({ type: 'cancel_match' });
  }

  async function seatAction(type) {
    if (!page.current) return;
    await ask({ type, game: page.current });
  }

  // Resolves to null when sent, or to the error the chat panel shows (chat.js).
  async function sendChat(game, text) {
    const msg = { type: 'chat', text, lid: newClientId('l-') };
    if (game) msg.game = game;
    const reply = await askOnce(msg);
    return reply.type === 'error' ? reply : null;
  }

  return { ask, create, playComputer, quickMatch, cancelMatch, seatAction, sendChat };
}
