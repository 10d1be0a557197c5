// The page: wires the connection to the lobby and game views, keeps what it knows of each
// game (version, role, state) and decides which game is on screen.

import { Connection, Disconnected } from './connection.js';
import { Outbox } from './outbox.js';
import { LobbyView } from './lobby.js';
import { GameView } from './game.js';
import { StatusView } from './status.js';
import { TurnCue } from './cue.js';
import { announce } from './announcer.js';
import { notify } from './notice.js';
import { storage } from './storage.js';
import { createNames } from './names.js';
import { createLink, gameLink } from './link.js';
import { pageState, adopt, awayOf } from './state.js';
import { $, show } from './dom.js';
import { eventText, presenceText, chatText } from './spoken.js';
import { GAME_EVENTS, PROTOCOL_VERSION, applyLimits, errorText } from './protocol.js';

const app = pageState(new URLSearchParams(location.search).get('game'));

const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const conn = new Connection(wsUrl, {
  hello: helloFields,
  onWelcome,
  onMessage,
  onState: (s) => {
    status.update(s);
    if (s.state !== 'connected') renderGame();
  },
});
const status = new StatusView(() => conn.reconnectNow());
const outbox = new Outbox(conn, {
  version: (game) => app.games.get(game)?.version,
  changed: renderGame,
  failed: moveFailed,
});
const lobby = new LobbyView({
  create: () => withName('create', create),
  quickMatch: () => withName('create', quickMatch),
  cancelMatch,
  join: (id) => withName('join', () => join(id, false)),
  watch: (id) => join(id, true),
  chat: (text) => withName('chat', () => sendChat(null, text)),
});
const gameView = new GameView({
  // A move and a rematch show the player's name too: a name typed at the top goes first.
  play: (cell) => {
    const id = app.current;
    if (id) withName('move', () => app.current === id && outbox.play(id, cell), { ask: false });
  },
  rematch: () => withName('rematch', () => seatAction('rematch'), { ask: false }),
  resign: () => seatAction('resign'),
  leave,
  copyLink: () => link.copyLink(),
  chat: (text) => withName('chat', () => sendChat(app.current, text)),
});
const cue = new TurnCue($('turn-cue'));
const { withName, showName } = createNames({ page: app, conn, recover });
const link = createLink({ page: app, gameView, withName, join });

// ---- Connection ----

function helloFields() {
  const fields = {};
  const token = storage.token();
  if (token) fields.token = token;
  const name = storage.name();
  if (name) fields.name = name;
  const resume = [...app.games.values()].map((g) => ({ game: g.id, version: g.version }));
  if (resume.length) fields.resume = resume;
  return fields;
}

function onWelcome(msg) {
  applyLimits(msg);
  if (msg.protocol !== PROTOCOL_VERSION) {
    notify('The server was updated: please reload the page.');
  }
  if (msg.token) storage.setToken(msg.token);
  if (!msg.resumed) {
    // A new session: seats of the old one are not ours any more.
    app.games.clear();
    for (const id of [...outbox.entries.keys()]) outbox.drop(id);
  }
  showName(msg.name, msg.instance);
  if (app.renameOnWelcome) {
    app.renameOnWelcome = false;
    ask({ type: 'rename', name: msg.name });
  }

  const first = !app.welcomed;
  app.welcomed = true;
  app.watchingLobby = false;
  if (app.current) {
    // The hello restored the games of the session. A game that has expired meanwhile is
    // dropped without a word, so ask: `sync` fails with not_in_game if it was not restored.
    const g = app.games.get(app.current);
    if (msg.resumed && g) syncGame(g);
    else join(app.current, g?.role === 'spectator');
  } else if (app.wanted) {
    link.arriveByLink(app.wanted);
  }
  app.restoring = first && !app.current && !app.wanted;
  if (app.view === 'lobby') watchLobby();
  // The server drops a waiting player's ticket when the connection goes: queue again.
  if (app.queued) {
    app.queued = false;
    quickMatch();
  }
  outbox.resendAll();
  renderGame();
}

function onMessage(msg) {
  if (GAME_EVENTS.has(msg.type)) return onGameEvent(msg);
  switch (msg.type) {
    case 'snapshot':
      // Replies are handled by whoever asked; these come from a resume, a resync or a match.
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
      link.lobbyListed(msg);
      return;
    case 'match_found':
      app.queued = false;
      app.wanted = msg.game;
      app.matchGames.add(msg.game);
      lobby.setQueued(false, 'Opponent found!');
      announce('Opponent found.');
      return;
    case 'error':
      if (msg.req == null) onStrayError(msg);
      return;
    default:
  }
}

// ---- Games ----

function onSnapshot(msg) {
  const seatedAndLive = (msg.you === 'X' || msg.you === 'O')
    && (msg.state.status === 'playing' || msg.state.status === 'waiting');
  const mine = msg.game === app.current || msg.game === app.wanted
    || (app.restoring && !app.current && seatedAndLive);
  if (!mine) {
    // A game of the session the page is not showing (left while offline, or opened in
    // another tab earlier): stop its events on this connection.
    conn.request({ type: 'leave', game: msg.game }).catch(() => {});
    app.games.delete(msg.game);
    return;
  }
  const g = adopt(app, msg);
  if (app.current !== g.id) showGame(g.id);
  gameView.chat.replace(msg.chat);
  renderGame();
}

function onGameEvent(msg) {
  const g = app.games.get(msg.game);
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
  if (g.id === app.current) {
    const text = eventText(g, msg, before);
    announce(text);
    renderGame();
    const mine = g.role === 'X' || g.role === 'O';
    const turnNow = mine && g.state.status === 'playing' && g.state.turn === g.role;
    const turnBefore = before.status === 'playing' && before.turn === g.role;
    if (turnNow && (!turnBefore || msg.type === 'round_started')) cue.yourTurn(text, g.id);
  }
  if (msg.type === 'aborted' && g.fromMatch) {
    // The opponent of a quick match never arrived: find another.
    notify('Your opponent never arrived: looking for another.');
    app.games.delete(g.id);
    showLobby();
    quickMatch();
  }
}

function onPresence(msg) {
  const g = app.games.get(msg.game);
  if (!g) return;
  const before = g.presence?.players ?? {};
  g.presence = { players: msg.players, spectators: msg.spectators, away: msg.away };
  g.away = awayOf(g.presence, g);
  if (g.id !== app.current) return;
  for (const m of ['X', 'O']) {
    const name = g.state.players[m];
    if (m !== g.role && name && before[m] !== undefined && before[m] !== msg.players[m]) {
      announce(presenceText(g, m, msg.players[m]));
    }
  }
  renderGame();
}

function onChat(msg) {
  if (msg.game == null) {
    if (lobby.chat.receive(msg) && app.view === 'lobby') announce(chatText(msg));
  } else if (msg.game === app.current) {
    if (gameView.chat.receive(msg)) announce(chatText(msg));
  }
}

function onChatHistory(msg) {
  if (msg.game == null) lobby.chat.replace(msg.lines);
  else if (msg.game === app.current) gameView.chat.replace(msg.lines);
}

function onStrayError(msg) {
  // Errors without a req come from restoring or resyncing a game, and do not say which:
  // probe the game on screen.
  notify(errorText(msg));
  const g = app.current && app.games.get(app.current);
  if (g && (msg.code === 'unknown_game' || msg.code === 'unavailable')) syncGame(g);
  else recover(msg, app.current);
}

// What an error says about the page's own view, beyond the message shown.
function recover(err, game) {
  const g = game && game === app.current ? app.games.get(game) : null;
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
  if (reply?.type === 'error' && reply.code === 'not_in_game' && g.id === app.current) {
    join(g.id, g.role === 'spectator');
  }
}

// ---- Actions ----

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

async function create() {
  const reply = await ask({ type: 'create' });
  if (reply?.type === 'snapshot') enter(reply);
}

async function join(id, spectate) {
  app.wanted = id;
  const msg = { type: 'join', game: id };
  if (spectate) msg.spectate = true;
  const reply = await ask(msg);
  if (app.wanted !== id && app.current !== id) return;
  if (reply?.type === 'snapshot') {
    enter(reply);
  } else if (reply?.type === 'error') {
    app.wanted = null;
    if (app.current === id) app.games.delete(id);
    showLobby();
  }
}

function enter(snapshot) {
  app.wanted = null;
  const g = adopt(app, snapshot);
  showGame(g.id);
  gameView.chat.replace(snapshot.chat);
  renderGame();
}

async function quickMatch() {
  if (app.queued) return;
  app.queued = true;
  lobby.setQueued(true);
  const reply = await ask({ type: 'quick_match' });
  if (reply?.type === 'error' && reply.code !== 'already_queued') {
    app.queued = false;
    lobby.setQueued(false);
  } else if (!reply) {
    app.queued = false;
    lobby.setQueued(false);
  }
}

async function cancelMatch() {
  app.queued = false;
  lobby.setQueued(false);
  await ask({ type: 'cancel_match' });
}

async function seatAction(type) {
  if (!app.current) return;
  await ask({ type, game: app.current });
}

async function sendChat(game, text) {
  const msg = { type: 'chat', text };
  if (game) msg.game = game;
  const reply = await ask(msg);
  if (!reply) return { code: 'unavailable' };
  return reply.type === 'error' ? reply : null;
}

function leave() {
  const id = app.current;
  if (id) {
    conn.request({ type: 'leave', game: id }).catch(() => {});
    app.games.delete(id);
    outbox.drop(id);
  }
  showLobby();
}

function moveFailed(entry, err, retrying) {
  if (retrying) {
    notify(errorText(err));
    return;
  }
  notify(errorText(err));
  const g = app.games.get(entry.game);
  if (!g) return;
  if (err.code === 'not_in_game' || err.code === 'hello_required') recover(err, g.id);
  // The board may be behind the game: fetch what was missed.
  else syncGame(g);
}

// ---- Views ----

function showLobby() {
  app.current = null;
  app.view = 'lobby';
  show($('game'), false);
  show($('lobby'), true);
  if (new URLSearchParams(location.search).has('game')) {
    history.pushState(null, '', location.pathname);
  }
  document.title = 'Tic-tac-toe';
  if (conn.connected) watchLobby();
  $('lobby-title').focus();
}

function showGame(id) {
  const changed = app.current !== id;
  app.current = id;
  app.view = 'game';
  show($('lobby'), false);
  show($('game'), true);
  if (new URLSearchParams(location.search).get('game') !== id) {
    history.pushState(null, '', `${location.pathname}?game=${encodeURIComponent(id)}`);
  }
  if (app.watchingLobby) {
    app.watchingLobby = false;
    conn.request({ type: 'lobby', watch: false }).catch(() => {});
  }
  if (changed) {
    gameView.chat.clear();
    // For screen readers and the keyboard: the new view starts here. Headings show no focus
    // ring (style.css): they are not controls.
    $('game-title').focus();
  }
}

async function watchLobby() {
  if (app.watchingLobby) return;
  app.watchingLobby = true;
  const reply = await conn.request({ type: 'lobby', watch: true }).catch(() => null);
  app.restoring = false;
  if (reply?.type !== 'ack') app.watchingLobby = false;
}

function renderGame() {
  if (app.view !== 'game' || !app.current) return;
  const g = app.games.get(app.current);
  if (!g) return;
  g.pendingCell = outbox.pendingCell(g.id);
  gameView.render(g, { connected: conn.connected, link: gameLink(g.id) });
  document.title = `${$('game-status').textContent} · Tic-tac-toe`;
}

// ---- Start ----

window.addEventListener('popstate', () => {
  const id = new URLSearchParams(location.search).get('game');
  if (id && id !== app.current) join(id, false);
  else if (!id && app.current) leave();
});

if (app.wanted) {
  show($('lobby'), false);
}
conn.start();
