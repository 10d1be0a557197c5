// The composition root: builds the connection, the views and the modules that act on the
// page's state, wires each one's hooks to the others, and connects.
//
// state.js     what the page knows of each game, and which one is on screen
// events.js    what the server sends unasked, folded into the state
// routing.js   which game is on screen, in step with the address bar
// actions.js   what the player asks of the server (through `ask`)
// recovery.js  catching up after a reconnect or an error
// names.js     the player's name, its rule and its dialog
// link.js      a game's link: copying it, arriving by it
// account.js   the player's profile: create, new code, delete, recover; profile.js shows it
// leaderboard.js  the leaderboard panel
// views.js     the lobby and game views, redrawn from the state
// spoken.js    what screen readers hear; notice.js: what the player must see

import { Connection } from './connection.js';
import { Outbox } from './outbox.js';
import { StatusView } from './status.js';
import { pageState } from './state.js';
import { createViews } from './views.js';
import { createRouting, gameInAddress, panelInAddress } from './routing.js';
import { createActions } from './actions.js';
import { createNames } from './names.js';
import { createLink } from './link.js';
import { createRecovery } from './recovery.js';
import { createEvents } from './events.js';
import { createAccount } from './account.js';
import { createLeaderboard } from './leaderboard.js';
import { ProfileView } from './profile.js';

const page = pageState(gameInAddress());
// A page opened at ?view=profile or ?view=leaderboard (a bookmark, a reload) shows that panel
// once connected; a game's address wins.
let panelAtStart = page.wanted ? null : panelInAddress();
const openPanel = (name) => (name === 'profile' ? account.open() : leaderboard.open());

// Hooks name modules built further down: they run only once the connection is started, last.
const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
const conn = new Connection(wsUrl, {
  hello: () => recovery.helloFields(),
  onWelcome: (msg) => {
    recovery.welcome(msg);
    account.welcomed(msg);
    if (panelAtStart) {
      openPanel(panelAtStart);
      panelAtStart = null;
    }
  },
  onMessage: (msg) => events.receive(msg),
  onState: (s) => {
    status.update(s);
    if (s.state !== 'connected') views.render();
  },
});
const status = new StatusView(() => conn.reconnectNow());
const outbox = new Outbox(conn, {
  version: (game) => page.games.get(game)?.version,
  changed: () => views.render(),
  failed: (entry, err, retrying) => recovery.moveFailed(entry, err, retrying),
});

const views = createViews({
  page,
  conn,
  outbox,
  controls: {
    lobby: {
      create: () => names.withName('create', actions.create),
      quickMatch: () => names.withName('create', actions.quickMatch),
      cancelMatch: () => actions.cancelMatch(),
      playComputer: (level) => names.withName('create', () => actions.playComputer(level)),
      profile: () => account.open(),
      leaderboard: () => leaderboard.open(),
      join: (id) => names.withName('join', () => routing.join(id, false)),
      watch: (id) => routing.join(id, true),
      chat: (text) => names.withName('chat', () => actions.sendChat(null, text)),
    },
    game: {
      // A move and a rematch show the player's name too: a name typed at the top goes first.
      play: (cell) => {
        const id = page.current;
        if (id) names.withName('move', () => page.current === id && outbox.play(id, cell), { ask: false });
      },
      rematch: () => names.withName('rematch', () => actions.seatAction('rematch'), { ask: false }),
      resign: () => actions.seatAction('resign'),
      cancel: () => actions.seatAction('cancel'),
      leave: () => routing.leave(),
      copyLink: () => link.copyLink(),
      chat: (text) => names.withName('chat', () => actions.sendChat(page.current, text)),
    },
  },
});

// Requests and recovery call each other (a refusal can mean joining again): the later-built
// side is reached through a function.
const routing = createRouting({
  page,
  conn,
  outbox,
  gameView: views.game,
  render: views.render,
  ask: (msg) => actions.ask(msg),
  // A rated round may have moved the rating the lobby shows.
  lobbyShown: () => account.lobbyShown(),
  openPanel,
});
const recover = (err, game) => recovery.recover(err, game);
const actions = createActions({ page, conn, lobby: views.lobby, enter: routing.enter, recover });
const names = createNames({ page, conn, recover });
const link = createLink({
  page, conn, gameView: views.game, withName: names.withName, join: routing.join,
});
const recovery = createRecovery({
  page,
  conn,
  outbox,
  render: views.render,
  ask: actions.ask,
  join: routing.join,
  watchLobby: routing.watchLobby,
  arriveByLink: link.arriveByLink,
  quickMatch: actions.quickMatch,
  showName: names.showName,
});
const profileView = new ProfileView({
  create: () => account.create(),
  newCode: () => account.newCode(),
  remove: () => account.remove(),
  recover: (code) => account.recover(code),
});
const account = createAccount({
  page,
  conn,
  ask: actions.ask,
  lobby: views.lobby,
  view: profileView,
  showPanel: routing.showPanel,
  // A recovered profile's session replaces this one: its games and queue are not ours.
  forget: () => {
    page.games.clear();
    page.matchGames.clear();
    for (const id of [...outbox.entries.keys()]) outbox.drop(id);
    if (page.queued) {
      page.queued = false;
      views.lobby.setQueued(false);
    }
  },
});
const leaderboard = createLeaderboard({ page, conn, showPanel: routing.showPanel });
for (const b of document.querySelectorAll('.to-lobby')) b.addEventListener('click', () => routing.showLobby());

const events = createEvents({
  page,
  conn,
  outbox,
  lobby: views.lobby,
  gameView: views.game,
  cue: views.cue,
  render: views.render,
  showGame: routing.showGame,
  showLobby: routing.showLobby,
  syncGame: recovery.syncGame,
  strayError: recovery.strayError,
  quickMatch: actions.quickMatch,
});

conn.start();
