// Which view is on screen (the lobby, a game, the profile or the leaderboard panel) and which
// game, if any: joining, entering and leaving one, kept in step with the address bar
// (`?game=<id>`, `?view=profile|leaderboard`) and the browser's history (Back closes a panel
// as it leaves a game), and the lobby list watched only while the lobby shows.

import { adopt } from './state.js';
import { $, show } from './dom.js';

const VIEWS = ['lobby', 'game', 'profile', 'leaderboard'];
const PANELS = ['profile', 'leaderboard'];

// Shows the view `name`, and hides the others.
function only(name) {
  for (const v of VIEWS) show($(v), v === name);
}

export function gameInAddress() {
  return new URLSearchParams(location.search).get('game');
}

// The panel the address names, if any (a game's address wins over it).
export function panelInAddress() {
  const view = new URLSearchParams(location.search).get('view');
  return PANELS.includes(view) ? view : null;
}

// `ask(msg)`: a request whose refusal is shown and recovered from (actions.js); `lobbyShown()`
// hears of every return to the lobby; `openPanel(name)` opens a panel with its content, as its
// button does.
export function createRouting({
  page, conn, outbox, gameView, render, ask, lobbyShown, openPanel,
}) {
  async function join(id, spectate) {
    page.wanted = id;
    const msg = { type: 'join', game: id };
    if (spectate) msg.spectate = true;
    const reply = await ask(msg);
    if (page.wanted !== id && page.current !== id) return;
    if (reply?.type === 'snapshot') {
      enter(reply);
    } else if (reply?.type === 'error') {
      page.wanted = null;
      if (page.current === id) page.games.delete(id);
      showLobby();
    }
  }

  function enter(snapshot) {
    page.wanted = null;
    const g = adopt(page, snapshot);
    showGame(g.id);
    gameView.chat.replace(snapshot.chat);
    render();
  }

  // `push`: false when the browser's history already moved (Back, Forward).
  function leave({ push = true } = {}) {
    const id = page.current;
    if (id) {
      conn.request({ type: 'leave', game: id }).catch(() => {});
      page.games.delete(id);
      outbox.drop(id);
    }
    showLobby({ push });
  }

  function showLobby({ push = true } = {}) {
    page.current = null;
    page.view = 'lobby';
    only('lobby');
    if (push && location.search) {
      history.pushState(null, '', location.pathname);
    }
    document.title = 'Tic-tac-toe';
    if (conn.connected) watchLobby();
    lobbyShown();
    $('lobby-title').focus();
  }

  function showGame(id) {
    const changed = page.current !== id;
    page.current = id;
    page.view = 'game';
    only('game');
    if (gameInAddress() !== id) {
      history.pushState(null, '', `${location.pathname}?game=${encodeURIComponent(id)}`);
    }
    if (page.watchingLobby) {
      page.watchingLobby = false;
      conn.request({ type: 'lobby', watch: false }).catch(() => {});
    }
    if (changed) {
      gameView.chat.clear();
      // For screen readers and the keyboard: the new view starts here. Headings show no focus
      // ring (style.css): they are not controls.
      $('game-title').focus();
    }
  }

  // The profile or the leaderboard panel, from the lobby: the lobby is still watched, so that
  // going back shows it as it is.
  function showPanel(name) {
    page.view = name;
    only(name);
    if (panelInAddress() !== name) {
      history.pushState(null, '', `${location.pathname}?view=${name}`);
    }
    $(`${name}-title`).focus();
  }

  async function watchLobby() {
    if (page.watchingLobby) return;
    page.watchingLobby = true;
    const reply = await conn.request({ type: 'lobby', watch: true }).catch(() => null);
    page.restoring = false;
    if (reply?.type !== 'ack') page.watchingLobby = false;
  }

  window.addEventListener('popstate', () => {
    const id = gameInAddress();
    if (id) {
      if (id !== page.current) join(id, false);
      return;
    }
    if (page.current) leave({ push: false });
    const panel = panelInAddress();
    if (panel && page.view !== panel) openPanel(panel);
    else if (!panel && page.view !== 'lobby') showLobby({ push: false });
  });

  // A page opened by a link does not flash the lobby while it joins the game, nor while it
  // waits to open the panel its address names (after the first welcome).
  if (page.wanted || panelInAddress()) {
    show($('lobby'), false);
  }

  return { join, enter, leave, showLobby, showGame, showPanel, watchLobby };
}
