// A recorded round of the profile's history replayed move by move, on a board of its own: the
// same board, move order and controls as a finished game's replay (game.js), from what the
// history keeps of the round (its starter and its moves).

import { $, show } from './dom.js';
import { BoardView } from './board.js';
import { boardAt } from './game.js';

// The round a starter opens: X starts odd rounds, O even ones (game.js counts by round).
const roundOf = (starter) => (starter === 'O' ? 2 : 1);

const LINES = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]];

// The cells of a line of one mark on `board` (9 chars of X, O or '.'), or null. The history
// keeps a round's moves, not its line: the live board gets the line from the server.
const lineOn = (board) =>
  LINES.find(([a, b, c]) => board[a] !== '.' && board[a] === board[b] && board[a] === board[c]) ?? null;

export class HistoryReplay {
  constructor() {
    // Read only: a click on a cell plays nothing.
    this.board = new BoardView($('history-board'), () => {});
    this.entry = null;
    this.step = 0;
    $('history-first').addEventListener('click', () => this.to(0));
    $('history-prev').addEventListener('click', () => this.to(this.step - 1));
    $('history-next').addEventListener('click', () => this.to(this.step + 1));
    $('history-last').addEventListener('click', () => this.to(Infinity));
  }

  // Opens `entry` (a history entry) at its final position; `title` says which game it is.
  open(entry, title) {
    this.entry = entry;
    const heading = $('history-replay-title');
    heading.textContent = title;
    heading.tabIndex = -1;
    show($('history-replay'), true);
    this.to(Infinity);
    heading.focus();
  }

  close() {
    this.entry = null;
    show($('history-replay'), false);
  }

  to(step) {
    if (!this.entry) return;
    const moves = this.entry.moves ?? [];
    this.step = Math.max(0, Math.min(moves.length, step));
    const state = { round: roundOf(this.entry.starter), moves };
    const board = boardAt(state, this.step);
    this.board.render({
      board,
      playable: false,
      // The final position of a round won on a line shows it, as the game's own board does.
      line: this.step === moves.length && this.entry.reason === 'line' ? lineOn(board) : null,
      pending: null,
      last: this.step > 0 ? moves[this.step - 1] : null,
    });
    const total = moves.length;
    $('history-board').setAttribute('aria-label', `Replayed board, move ${this.step} of ${total}`);
    $('history-pos').textContent = this.step === 0 ? `Start of ${total} moves` : `Move ${this.step} of ${total}`;
    $('history-first').disabled = this.step === 0;
    $('history-prev').disabled = this.step === 0;
    $('history-next').disabled = this.step >= total;
    $('history-last').disabled = this.step >= total;
  }
}
