// The game view: board, whose turn or the result, an absent player's forfeit countdown,
// players with presence, rating and score, the game's terms (rated or casual, against the
// computer), the round's moves (a finished round replays move by move), invite link,
// rematch / resign / leave, and the game's chat.

import { $, el, show } from './dom.js';
import { BoardView } from './board.js';
import { ChatView } from './chat.js';
import { cellName, limits, other } from './protocol.js';
import { ratingText } from './ratings.js';

const COPIED_MS = 2000;

// The mark that moves first in a round: X in odd rounds, O in even ones.
export function starter(round) {
  return round % 2 === 1 ? 'X' : 'O';
}

// Which mark played the i-th move (0-based) of a round.
export function moverOf(round, i) {
  return i % 2 === 0 ? starter(round) : other(starter(round));
}

// The board after the first `step` moves of a round.
export function boardAt(state, step) {
  const cells = Array(9).fill('.');
  (state.moves ?? []).slice(0, step).forEach((c, i) => {
    cells[c] = moverOf(state.round, i);
  });
  return cells.join('');
}

// The computer's mark in a game against it, else null.
export function computerMark(state) {
  return state.computer?.mark ?? null;
}

// Whether `mark`'s player is gone, and how: null when here (or the seat is empty), else
// { reason: 'left' | 'disconnected' | null, since } with `since` on this page's clock. The
// computer's seat is never held by a connection, and never away.
export function absence(game, mark) {
  if (game.state.players[mark] == null) return null;
  if (computerMark(game.state) === mark) return null;
  if (game.presence?.players?.[mark] !== false) return null;
  return game.away?.[mark] ?? { reason: null, since: null };
}

// Sentences that name players are built as parts: strings, and { name } for a player's name,
// which the page shows in a box of bounded width (cut with an ellipsis) and screen readers
// and announcements get whole.
const N = (name) => ({ name });

export function textOf(parts) {
  return parts.map((p) => (typeof p === 'string' ? p : p.name)).join('');
}

export function nodesOf(parts) {
  return parts.map((p) => (typeof p === 'string' ? p : el('span', { class: 'nm', title: p.name }, p.name)));
}

// "Bob left the game" / "Bob is away", as parts.
export function goneParts(name, away) {
  if (away.reason === 'left') return [N(name), ' left the game'];
  if (away.reason === 'disconnected') return [N(name), ' is away (disconnected)'];
  return [N(name), ' is away'];
}

export function goneText(name, away) {
  return textOf(goneParts(name, away));
}

// Why a round ended, said of the loser (third person) and to the loser (second person).
const REASONS = {
  forfeit: { they: 'was away too long', you: 'you were away too long' },
  resign: { they: 'resigned', you: 'you resigned' },
};

// The sentence above the board, as parts. `game`: { role, state }. Each player reads about
// themselves in the second person: "You lost: you were away too long.", never their own name.
export function statusParts({ role, state }) {
  const me = role === 'X' || role === 'O' ? role : null;
  const name = (m) => N(state.players[m] ?? m);
  switch (state.status) {
    case 'waiting':
      return me ? ['Waiting for an opponent: share the link.'] : ['Waiting for an opponent to join ', name('X'), '.'];
    case 'aborted':
      // Only a game its creator cancelled ends with the O seat empty.
      if (state.players.O == null) return [me === 'X' ? 'You cancelled this game.' : 'Game cancelled: nobody had joined.'];
      return ['Game aborted: a player never arrived.'];
    case 'playing':
      // The computer answers after a short, human-like delay: say that it is on it.
      if (computerMark(state) === state.turn) return [name(state.turn), ' is thinking…'];
      if (me) return state.turn === me ? [`Your turn (${me}).`] : [name(state.turn), `'s turn (${state.turn}).`];
      return [name(state.turn), ` to move (${state.turn}).`];
    case 'finished': {
      const r = state.result ?? {};
      if (r.winner == null) return ['Draw.'];
      const loser = other(r.winner);
      const reason = REASONS[r.reason];
      const why = reason ? [' ', name(loser), ` ${reason.they}.`] : [];
      if (me === r.winner) return ['You won!', ...why];
      if (me) return reason ? [`You lost: ${reason.you}.`] : [name(r.winner), ' won.'];
      return [name(r.winner), ` (${r.winner}) won.`, ...why];
    }
    default:
      return [];
  }
}

export function describe(game) {
  return textOf(statusParts(game));
}

export class GameView {
  // actions: play(cell), rematch(), resign(), cancel(), leave(), copyLink(), chat(text).
  constructor(actions) {
    this.actions = actions;
    this.board = new BoardView($('board'), (cell) => actions.play(cell));
    this.chat = new ChatView($('game-chat'), { label: 'Game chat', onSend: actions.chat });
    $('rematch').addEventListener('click', () => actions.rematch());
    $('resign').addEventListener('click', () => this.resignClicked());
    $('cancel-game').addEventListener('click', () => actions.cancel());
    $('leave').addEventListener('click', () => actions.leave());
    $('copy-link').addEventListener('click', () => actions.copyLink());
    $('replay-first').addEventListener('click', () => this.replayTo(0));
    $('replay-prev').addEventListener('click', () => this.replayTo(this.shownStep() - 1));
    $('replay-next').addEventListener('click', () => this.replayTo(this.shownStep() + 1));
    $('replay-last').addEventListener('click', () => this.replayTo(null));
    this.resignArmed = null;
    this.copiedTimer = null;
    // The move shown while replaying a finished round (null: the live board), and the round
    // it belongs to.
    this.replay = null;
    this.replayKey = null;
    this.last = null;
    this.ticker = null;
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

  // The confirmation goes on the button itself, which keeps its width.
  copied() {
    const b = $('copy-link');
    b.textContent = 'Copied ✓';
    clearTimeout(this.copiedTimer);
    this.copiedTimer = setTimeout(() => {
      b.textContent = 'Copy link';
    }, COPIED_MS);
  }

  shownStep() {
    const n = this.last?.game.state.moves?.length ?? 0;
    return this.replay ?? n;
  }

  replayTo(step) {
    if (!this.last) return;
    const n = this.last.game.state.moves?.length ?? 0;
    this.replay = step == null || step >= n ? null : Math.max(0, step);
    this.render(this.last.game, this.last.opts);
  }

  render(game, opts) {
    this.last = { game, opts };
    const { connected, link } = opts;
    const { role, state, presence } = game;
    const me = role === 'X' || role === 'O' ? role : null;
    const name = (m) => state.players[m] ?? m;
    const moves = state.moves ?? [];
    const finished = state.status === 'finished' || state.status === 'aborted';
    // A replay belongs to one finished round: anything else brings the live board back.
    const key = `${game.id}:${state.round}:${state.status}`;
    if (this.replayKey !== key || !finished) this.replay = null;
    this.replayKey = key;
    const replaying = this.replay != null;

    const seat = (m) => (state.players[m] == null ? '…' : N(state.players[m]));
    $('game-title').replaceChildren(...nodesOf([
      seat('X'), ' vs ', seat('O'), state.round > 1 ? ` · round ${state.round}` : '',
    ]));
    // Short, beside the title: the computer's seat says its level itself (renderPlayers).
    const terms = $('game-terms');
    terms.textContent = state.rated ? 'Rated' : 'Casual';
    terms.dataset.rated = String(Boolean(state.rated));
    show($('watching'), !me);
    // The invite and the turn cue are for players: a spectator has neither.
    show($('share'), Boolean(me));
    show($('cue'), Boolean(me));
    $('game').querySelector('.game-layout').dataset.offline = String(!connected);
    const status = $('game-status');
    const parts = statusParts(game);
    if (!connected && state.status === 'playing' && me) parts.push(' Waiting for the connection.');
    status.replaceChildren(...nodesOf(parts));
    status.dataset.status = state.status;
    const myTurn = me && state.status === 'playing' && state.turn === me;
    const step = replaying ? this.replay : moves.length;
    this.board.render({
      board: replaying ? boardAt(state, step) : state.board,
      playable: Boolean(myTurn && connected),
      line: replaying ? null : state.result?.line,
      pending: game.pendingCell,
      last: step > 0 ? moves[step - 1] : null,
    });
    $('board').setAttribute('aria-label', replaying
      ? `Board, replay of move ${step} of ${moves.length}`
      : me ? `Board, you play ${me}` : 'Board, read only');
    this.renderReplay(finished && moves.length > 0, step, moves.length);
    this.renderMoves(state, step);
    this.renderPlayers(game, me);
    this.renderAway(game, me);

    $('game-link').value = link;
    const over = state.status === 'finished';
    const asked = state.rematch ?? {};
    const opp = me ? other(me) : null;
    const oppGone = me ? absence(game, opp) : null;
    show($('rematch'), Boolean(me && over));
    // A rematch needs both players: while the other one is gone it can never start.
    $('rematch').disabled = Boolean(me && (asked[me] || oppGone));
    $('rematch').textContent = me && asked[opp] ? 'Accept rematch' : 'Rematch';
    const rs = $('rematch-status');
    // Its line is kept even when empty (style.css): nothing under it moves as it comes and goes.
    let said = [];
    if (me && over && oppGone) {
      said = [...goneParts(name(opp), oppGone), ': a rematch needs them back.'];
    } else if (me && over && asked[opp] && !asked[me]) {
      said = [N(name(opp)), ' wants a rematch.'];
    } else if (me && over && asked[me]) {
      said = [computerMark(state) === opp
        ? 'Rematch asked: the computer agrees in a moment.'
        : 'Rematch asked: waiting for your opponent.'];
    }
    rs.replaceChildren(...nodesOf(said));
    const playing = Boolean(me && state.status === 'playing');
    show($('resign'), playing);
    // Nobody has joined yet: the creator may take the game back.
    show($('cancel-game'), me === 'X' && state.status === 'waiting');
    // Leaving a round in progress starts the forfeit clock: say so before it happens.
    const leave = $('leave');
    const grace = Math.round(limits.forfeitGraceMs / 1000);
    leave.title = playing ? `You lose the round if you are not back within ${grace} s` : '';
    if (playing) leave.setAttribute('aria-description', leave.title);
    else leave.removeAttribute('aria-description');
  }

  renderReplay(available, step, total) {
    show($('replay'), available);
    if (!available) return;
    $('replay-pos').textContent = step === 0 ? `Start of ${total} moves` : `Move ${step} of ${total}`;
    $('replay-first').disabled = step === 0;
    $('replay-prev').disabled = step === 0;
    $('replay-next').disabled = step >= total;
    $('replay-last').disabled = step >= total;
  }

  renderMoves(state, step) {
    const moves = state.moves ?? [];
    const finished = state.status === 'finished' || state.status === 'aborted';
    const items = moves.map((c, i) => {
      const mark = moverOf(state.round, i);
      const b = el('button', {
        type: 'button',
        'aria-label': `Move ${i + 1}: ${mark} ${cellName(c)}`,
        dataset: { step: String(i + 1), cell: String(c), mark },
      });
      b.append(el('span', { class: `mark-${mark}` }, mark), ` ${cellName(c)}`);
      if (i + 1 === step) b.setAttribute('aria-current', 'step');
      // Jumping to a move is a replay: only once the round is over.
      if (finished) b.addEventListener('click', () => this.replayTo(i + 1));
      else b.disabled = true;
      const li = el('li');
      li.append(b);
      return li;
    });
    $('moves').replaceChildren(...items);
    $('moves-title').textContent = state.round > 1 ? `Moves of round ${state.round}` : 'Moves';
    show($('moves-empty'), moves.length === 0);
  }

  renderPlayers(game, me) {
    const { state, presence } = game;
    const score = state.score ?? null;
    const players = ['X', 'O'].map((m) => {
      const online = presence?.players?.[m] ?? false;
      const taken = state.players[m] != null;
      const away = absence(game, m);
      const li = el('li', {
        class: 'player',
        dataset: { mark: m, online: String(online), away: away?.reason ?? (away ? 'away' : '') },
      });
      li.append(
        el('span', { class: `mark mark-${m}` }, m),
        el('span', { class: 'player-name', title: taken ? state.players[m] : null }, taken ? state.players[m] : 'open seat'),
      );
      if (m === me) li.append(el('span', { class: 'you' }, '(you)'));
      const rating = state.ratings?.[m];
      if (rating != null) {
        li.append(el('span', { class: 'rating', 'aria-label': `rated ${rating}` }, ratingText(rating)));
      }
      if (computerMark(state) === m) {
        li.dataset.computer = state.computer.level;
        const thinking = state.status === 'playing' && state.turn === m;
        li.append(el('span', { class: 'presence computer' }, thinking ? 'thinking…' : `computer · ${state.computer.level}`));
      } else if (taken) {
        let pill = 'online';
        if (away) pill = away.reason === 'left' ? 'left' : (away.reason === 'disconnected' ? 'disconnected' : 'offline');
        li.append(el('span', { class: 'presence' }, pill));
      }
      if (score) {
        const wins = score[m] ?? 0;
        li.append(el('span', { class: 'score', 'aria-label': wins === 1 ? '1 win' : `${wins} wins` }, String(wins)));
      }
      return li;
    });
    $('players').replaceChildren(...players);
    const draws = score?.draws ?? 0;
    $('draws').textContent = score ? (draws === 1 ? '1 draw' : `${draws} draws`) : '';
    show($('draws'), Boolean(score));
    const n = presence?.spectators ?? 0;
    $('spectators').textContent = n === 1 ? '1 spectator' : `${n} spectators`;
  }

  // The forfeit countdown of an absent player, ticking every second while it shows.
  renderAway(game, me) {
    const { state } = game;
    const name = (m) => state.players[m] ?? m;
    const lines = [];
    // Parts of "Bob is away (disconnected) — you win by forfeit in 27 s".
    if (state.status === 'playing') {
      for (const m of ['X', 'O']) {
        if (m === me) continue;
        const away = absence(game, m);
        if (!away) continue;
        const left = away.since == null ? null
          : Math.max(0, Math.ceil((away.since + limits.forfeitGraceMs - Date.now()) / 1000));
        const when = left == null ? '' : left > 0 ? ` in ${left} s` : ' any moment now';
        const who = goneParts(name(m), away);
        lines.push(me
          ? [...who, ` — you win by forfeit${when}`]
          : [...who, ' — ', N(name(other(m))), ` wins by forfeit${when}`]);
      }
    }
    const box = $('away-status');
    box.replaceChildren(...nodesOf(lines.flatMap((l, i) => (i ? [' · ', ...l] : l))));
    show(box, lines.length > 0);
    if (lines.length > 0 && !this.ticker) {
      this.ticker = setInterval(() => {
        if (this.last && !$('game').hidden) this.renderAway(this.last.game, this.meOf(this.last.game));
        else this.stopTicker();
      }, 1000);
    } else if (lines.length === 0) {
      this.stopTicker();
    }
  }

  meOf(game) {
    return game.role === 'X' || game.role === 'O' ? game.role : null;
  }

  stopTicker() {
    clearInterval(this.ticker);
    this.ticker = null;
  }
}
