// The lobby and game views and the turn cue, and the game on screen redrawn from what the page
// knows of it: the move still waiting for its ack shows, and the tab's title follows the status.

import { LobbyView } from './lobby.js';
import { GameView } from './game.js';
import { TurnCue } from './cue.js';
import { gameLink } from './link.js';
import { $ } from './dom.js';

// `controls`: what each view's buttons do (LobbyView's and GameView's `actions`).
export function createViews({ page, conn, outbox, controls }) {
  const lobby = new LobbyView(controls.lobby);
  const game = new GameView(controls.game);
  const cue = new TurnCue($('turn-cue'));

  // Safe to call at any time: nothing happens unless a known game is on screen.
  function render() {
    if (page.view !== 'game' || !page.current) return;
    const g = page.games.get(page.current);
    if (!g) return;
    g.pendingCell = outbox.pendingCell(g.id);
    game.render(g, { connected: conn.connected, link: gameLink(g.id) });
    // A background tab shows whose turn it is, with or without the cue.
    document.title = `${$('game-status').textContent} · Tic-tac-toe`;
  }

  return { lobby, game, cue, render };
}
