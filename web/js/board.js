// The 3x3 board: nine real buttons with spoken names, one tab stop (arrow keys, Home/End or
// the number keys 1 to 9, in reading order, move between cells; Enter or Space plays), the
// winning line highlighted. Cells that cannot be played stay focusable (aria-disabled rather
// than disabled) so keyboard focus is never lost mid-game. The last move is outlined.

import { cellName } from './protocol.js';

const ARROWS = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };

export class BoardView {
  constructor(container, onPlay) {
    this.onPlay = onPlay;
    this.focusIndex = 4;
    this.cells = [];
    for (let i = 0; i < 9; i++) {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'cell';
      b.dataset.cell = String(i);
      b.tabIndex = i === this.focusIndex ? 0 : -1;
      b.addEventListener('click', () => {
        if (b.getAttribute('aria-disabled') !== 'true') this.onPlay(i);
      });
      b.addEventListener('keydown', (e) => this.onKey(e, i));
      b.addEventListener('focus', () => this.rove(i, false));
      this.cells.push(b);
      container.append(b);
    }
  }

  onKey(e, i) {
    let next = null;
    if (ARROWS[e.key]) {
      const [dr, dc] = ARROWS[e.key];
      const r = (Math.floor(i / 3) + dr + 3) % 3;
      const c = ((i % 3) + dc + 3) % 3;
      next = r * 3 + c;
    } else if (e.key === 'Home') {
      next = 0;
    } else if (e.key === 'End') {
      next = 8;
    } else if (/^[1-9]$/.test(e.key) && !e.ctrlKey && !e.metaKey && !e.altKey) {
      next = Number(e.key) - 1;
    }
    if (next != null) {
      e.preventDefault();
      this.rove(next, true);
    }
  }

  rove(i, focus) {
    this.cells[this.focusIndex].tabIndex = -1;
    this.focusIndex = i;
    this.cells[i].tabIndex = 0;
    if (focus) this.cells[i].focus();
  }

  // board: 9 chars of X, O or '.'; playable: whether a click may send a move now; last: the
  // cell of the last move shown.
  render({ board, playable, line, pending, last = null }) {
    const winning = new Set(line ?? []);
    this.cells.forEach((b, i) => {
      const mark = board[i] === '.' ? '' : board[i];
      const isPending = pending === i && !mark;
      b.textContent = mark || (isPending ? '·' : '');
      b.dataset.mark = mark;
      b.classList.toggle('win', winning.has(i));
      b.classList.toggle('pending', isPending);
      b.classList.toggle('last', last === i && Boolean(mark));
      const open = playable && !mark && pending == null;
      b.setAttribute('aria-disabled', open ? 'false' : 'true');
      let label = `${cellName(i)}, ${mark || 'empty'}`;
      if (winning.has(i)) label += ', winning line';
      if (last === i && mark) label += ', last move';
      if (isPending) label += ', sending';
      b.setAttribute('aria-label', label);
    });
  }
}
