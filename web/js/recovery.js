// Catching up after the page lost track: the games the hello asks to resume, what a welcome
// brings back (games, a name chosen offline, the lobby, the match queue, moves without an ack),
// and what an error says about a view that is behind.

import { notify } from './notice.js';
import { storage } from './storage.js';
import { PROTOCOL_VERSION, applyLimits, errorText } from './protocol.js';

export function createRecovery({
  page, conn, outbox, render, ask, join, watchLobby, arriveByLink, quickMatch, showName,
}) {
  function helloFields() {
    const fields = {};
    const token = storage.token();
    if (token) fields.token = token;
    const name = storage.name();
    if (name) fields.name = name;
    const resume = [...page.games.values()].map((g) => ({ game: g.id, version: g.version }));
    if (resume.length) fields.resume = resume;
    return fields;
  }

  function welcome(msg) {
    applyLimits(msg);
    if (msg.protocol !== PROTOCOL_VERSION) {
      notify('The server was updated: please reload the page.');
    }
    if (msg.token) storage.setToken(msg.token);
    if (!msg.resumed) {
      // A new session: seats of the old one are not ours any more.
      page.games.clear();
      for (const id of [...outbox.entries.keys()]) outbox.drop(id);
    }
    showName(msg.name, msg.instance);
    if (page.renameOnWelcome) {
      page.renameOnWelcome = false;
      ask({ type: 'rename', name: msg.name });
    }

    const first = !page.welcomed;
    page.welcomed = true;
    page.watchingLobby = false;
    if (page.current) {
      // The hello restored the games of the session. A game that has expired meanwhile is
      // dropped without a word, so ask: `sync` fails with not_in_game if it was not restored.
      const g = page.games.get(page.current);
      if (msg.resumed && g) syncGame(g);
      else join(page.current, g?.role === 'spectator');
    } else if (page.wanted) {
      arriveByLink(page.wanted);
    }
    page.restoring = first && !page.current && !page.wanted;
    if (page.view === 'lobby') watchLobby();
    // The server drops a waiting player's ticket when the connection goes: queue again.
    if (page.queued) {
      page.queued = false;
      quickMatch();
    }
    outbox.resendAll();
    render();
  }

  function strayError(msg) {
    // Errors without a req come from restoring a game or catching up with one, and do not say which:
    // probe the game on screen.
    notify(errorText(msg));
    const g = page.current && page.games.get(page.current);
    if (g && (msg.code === 'unknown_game' || msg.code === 'unavailable')) syncGame(g);
    else recover(msg, page.current);
  }

  // What an error says about the page's own view, beyond the message shown.
  function recover(err, game) {
    const g = game && game === page.current ? page.games.get(game) : null;
    switch (err.code) {
      case 'hello_required':
        // The server has no session for this connection: say hello again.
        conn.reconnectNow();
        break;
      case 'not_in_game':
        if (g) join(g.id, g.role === 'spectator');
        break;
      case 'not_your_seat':
      case 'not_your_turn':
      case 'game_over':
      case 'stale_board':
      case 'round_in_progress':
      case 'aborted':
      case 'not_started':
      // The request may still have been applied (a timed-out write's outcome is unknown).
      case 'unavailable':
        // The board is behind the game: catch up.
        if (g) syncGame(g);
        break;
      default:
    }
  }

  async function syncGame(g) {
    const reply = await conn.request({ type: 'sync', game: g.id, since: g.version }).catch(() => null);
    if (reply?.type === 'error' && reply.code === 'not_in_game' && g.id === page.current) {
      join(g.id, g.role === 'spectator');
    }
  }

  // The outbox's verdict on a move: `retrying` when it sends the move again by itself.
  function moveFailed(entry, err, retrying) {
    if (retrying) {
      notify(errorText(err));
      return;
    }
    notify(errorText(err));
    const g = page.games.get(entry.game);
    if (!g) return;
    if (err.code === 'not_in_game' || err.code === 'hello_required') recover(err, g.id);
    // The board may be behind the game: fetch what was missed.
    else syncGame(g);
  }

  return { helloFields, welcome, strayError, recover, syncGame, moveFailed };
}
