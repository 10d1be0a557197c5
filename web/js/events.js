// Messages the server sends unasked, folded into what the page knows: game events in version
// order (a gap asks for the missed ones), presence, chat, lobby lists, a match found, and
// snapshots from a resume. Replies are handled by whoever asked.

import { adopt, awayOf } from './state.js';
import { eventText, presenceText, chatText } from './spoken.js';
import { announce } from './announcer.js';
import { notify } from './notice.js';
import { GAME_EVENTS } from './protocol.js';

export function createEvents({
  page, conn, outbox, lobby, gameView, cue, render,
  showGame, showLobby, syncGame, strayError, quickMatch,
}) {
  function receive(msg) {
    if (GAME_EVENTS.has(msg.type)) return onGameEvent(msg);
    switch (msg.type) {
      case 'snapshot':
        // Replies are handled by whoever asked; these come from a resume, a catch-up or a match.
        if (msg.req == null) onSnapshot(msg);
        return;
      case 'presence':
        return onPresence(msg);
      case 'chat':
        return onChat(msg);
      case 'chat_history':
        return onChatHistory(msg);
      case 'lobby':
        lobby.render(msg);
        return;
      case 'match_found':
        page.queued = false;
        page.wanted = msg.game;
        page.matchGames.add(msg.game);
        lobby.setQueued(false, 'Opponent found!');
        announce('Opponent found.');
        return;
      case 'error':
        if (msg.req == null) strayError(msg);
        return;
      default:
    }
  }

  function onSnapshot(msg) {
    const seatedAndLive = (msg.you === 'X' || msg.you === 'O')
      && (msg.state.status === 'playing' || msg.state.status === 'waiting');
    const mine = msg.game === page.current || msg.game === page.wanted
      || (page.restoring && !page.current && seatedAndLive);
    if (!mine) {
      // A game of the session the page is not showing (left while offline, or opened in
      // another tab earlier): stop its events on this connection.
      conn.request({ type: 'leave', game: msg.game }).catch(() => {});
      page.games.delete(msg.game);
      return;
    }
    const g = adopt(page, msg);
    if (page.current !== g.id) showGame(g.id);
    gameView.chat.replace(msg.chat);
    render();
  }

  function onGameEvent(msg) {
    const g = page.games.get(msg.game);
    if (!g || msg.version <= g.version) return;
    if (msg.version > g.version + 1) {
      // Missed an event: ask for it rather than jump (the events tell what happened).
      syncGame(g);
      return;
    }
    const before = g.state;
    g.version = msg.version;
    g.state = msg.state;
    if (msg.type === 'round_started') outbox.drop(g.id);
    if (g.id === page.current) {
      const text = eventText(g, msg, before);
      announce(text);
      render();
      const mine = g.role === 'X' || g.role === 'O';
      const turnNow = mine && g.state.status === 'playing' && g.state.turn === g.role;
      const turnBefore = before.status === 'playing' && before.turn === g.role;
      if (turnNow && (!turnBefore || msg.type === 'round_started')) cue.yourTurn(text, g.id);
    }
    if (msg.type === 'aborted' && g.fromMatch) {
      // The opponent of a quick match never arrived: find another.
      notify('Your opponent never arrived: looking for another.');
      page.games.delete(g.id);
      showLobby();
      quickMatch();
    }
  }

  function onPresence(msg) {
    const g = page.games.get(msg.game);
    if (!g) return;
    const before = g.presence?.players ?? {};
    g.presence = { players: msg.players, spectators: msg.spectators, away: msg.away };
    g.away = awayOf(g.presence, g);
    if (g.id !== page.current) return;
    for (const m of ['X', 'O']) {
      const name = g.state.players[m];
      if (m !== g.role && name && before[m] !== undefined && before[m] !== msg.players[m]) {
        announce(presenceText(g, m, msg.players[m]));
      }
    }
    render();
  }

  function onChat(msg) {
    if (msg.game == null) {
      if (lobby.chat.receive(msg) && page.view === 'lobby') announce(chatText(msg));
    } else if (msg.game === page.current) {
      if (gameView.chat.receive(msg)) announce(chatText(msg));
    }
  }

  function onChatHistory(msg) {
    if (msg.game == null) lobby.chat.replace(msg.lines);
    else if (msg.game === page.current) gameView.chat.replace(msg.lines);
  }

  return { receive };
}
