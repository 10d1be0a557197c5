// The game view: board, whose turn or the result, players with presence, spectators,
// invite link, rematch / resign / leave, and the game's chat.

import { $, el, show } from './dom.js';
import { BoardView } from './board.js';
import { ChatView } from './chat.js';
import { limits, other } from './protocol.js';

const REASONS = {
  forfeit: 'was away too long',
  resign: 'resigned',
};

// The sentence under the board. `game`: { role, state }.
export function describe({ role, state }) {
  const me = role === 'X' || role === 'O' ? role : null;
  const name = (m) => state.players[m] ?? m;
  switch (state.status) {
    case 'waiting':
      return me ? 'Waiting for an opponent: share the link.' : `Waiting for an opponent to join ${name('X')}.`;
    case 'aborted':
      return 'Game aborted: a player never arrived.';
    case 'playing':
      if (me) return state.turn === me ? `Your turn (${me}).` : `${name(state.turn)}'s turn (${state.turn}).`;
      return `${name(state.turn)} to move (${state.turn}).`;
    case 'finished': {
      const r = state.result ?? {};
      if (r.winner == null) return 'Draw.';
      const loser = other(r.winner);
      const why = REASONS[r.reason] ? ` ${name(loser)} ${REASONS[r.reason]}.` : '';
      if (me) return (r.winner === me ? 'You won!' : `${name(r.winner)} won.`) + why;
      return `${name(r.winner)} (${r.winner}) won.${why}`;
    }
    default:
      return '';
  }
}

export class GameView {
  // actions: play(cell), rematch(), resign(), leave(), copyLink(), chat(text).
  constructor(actions) {
    this.actions = actions;
    this.board = new BoardView($('board'), (cell) => actions.play(cell));
    this.chat = new ChatView($('game-chat'), { label: 'Game chat', onSend: actions.chat });
    $('rematch').addEventListener('click', () => actions.rematch());
    $('resign').addEventListener('click', () => this.resignClicked());
    $('leave').addEventListener('click', () => actions.leave());
    $('copy-link').addEventListener('click', () => actions.copyLink());
    this.resignArmed = null;
  }

  // Resigning cannot be undone: the first press asks, the second (within 4 s) resigns. A
  // native confirm() would block the page and every incoming message with it.
  resignClicked() {
    const button = $('resign');
    if (this.resignArmed) {
      clearTimeout(this.resignArmed);
      this.resignArmed = null;
      button.textContent = 'Resign';
      this.actions.resign();
      return;
    }
    button.textContent = 'Really resign?';
    this.resignArmed = setTimeout(() => {
      this.resignArmed = null;
      button.textContent = 'Resign';
    }, 4000);
  }

  render(game, { connected, link }) {
    const { role, state, presence } = game;
    const me = role === 'X' || role === 'O' ? role : null;
    $('game-title').textContent = `${state.players.X ?? '…'} vs ${state.players.O ?? '…'}`
      + (state.round > 1 ? ` · round ${state.round}` : '');
    show($('watching'), !me);
    const status = $('game-status');
    let text = describe(game);
    if (!connected && state.status === 'playing' && me) text += ' Waiting for the connection.';
    status.textContent = text;
    status.dataset.status = state.status;
    const myTurn = me && state.status === 'playing' && state.turn === me;
    this.board.render({
      board: state.board,
      playable: Boolean(myTurn && connected),
      line: state.result?.line,
      pending: game.pendingCell,
    });
    $('board').setAttribute('aria-label', me ? `Board, you play ${me}` : 'Board, read only');

    const players = ['X', 'O'].map((m) => {
      const online = presence?.players?.[m] ?? false;
      const taken = state.players[m] != null;
      const li = el('li', { class: 'player', dataset: { mark: m, online: String(online) } });
      li.append(
        el('span', { class: `mark mark-${m}` }, m),
        ' ',
        el('span', { class: 'player-name' }, taken ? state.players[m] : 'open seat'),
      );
      if (m === me) li.append(' ', el('span', { class: 'you' }, '(you)'));
      if (taken) {
        li.append(' ', el('span', { class: 'presence' }, online ? 'online' : 'offline'));
      }
      return li;
    });
    $('players').replaceChildren(...players);
    const n = presence?.spectators ?? 0;
    $('spectators').textContent = n === 1 ? '1 spectator' : `${n} spectators`;

    $('game-link').value = link;
    const finished = state.status === 'finished';
    const asked = state.rematch ?? {};
    show($('rematch'), Boolean(me && finished));
    $('rematch').disabled = Boolean(me && asked[me]);
    $('rematch').textContent = me && asked[other(me)] ? 'Accept rematch' : 'Rematch';
    const rs = $('rematch-status');
    rs.textContent = '';
    if (me && finished && asked[other(me)] && !asked[me]) {
      rs.textContent = `${state.players[other(me)] ?? other(me)} wants a rematch.`;
    } else if (me && finished && asked[me]) {
      rs.textContent = 'Rematch asked: waiting for your opponent.';
    }
    show(rs, Boolean(rs.textContent));
    const playing = Boolean(me && state.status === 'playing');
    show($('resign'), playing);
    // Leaving a round in progress starts the forfeit clock: say so before it happens.
    const leave = $('leave');
    const grace = Math.round(limits.forfeitGraceMs / 1000);
    leave.title = playing ? `You lose the round if you are not back within ${grace} s` : '';
    if (playing) leave.setAttribute('aria-description', leave.title);
    else leave.removeAttribute('aria-description');
  }
}
