// Score and history: the round's moves are listed and the last one is marked on the board;
// the running score counts wins by player and draws across rounds; a finished game opened
// from its link replays move by move.

import {
  spec, player, env, step, check, connected, shot, click, seeMark, waitStatus, noErrors, onOrigin,
} from './lib.mjs';

const board = (p) => p.page.locator('#board .cell').evaluateAll(
  (cells) => cells.map((c) => c.dataset.mark || '.').join(''),
);
const lastCell = (p) => p.page.locator('#board .cell.last').evaluateAll(
  (cells) => cells.map((c) => c.dataset.cell).join(','),
);
const moveList = (p) => p.page.locator('#moves button').evaluateAll(
  (bs) => bs.map((b) => b.textContent.trim()).join(' | '),
);

async function score(p) {
  return p.page.evaluate(() => ({
    X: document.querySelector('#players [data-mark="X"] .score')?.textContent,
    O: document.querySelector('#players [data-mark="O"] .score')?.textContent,
    draws: document.querySelector('#draws')?.textContent,
  }));
}

// Plays `cells` alternately, starting with `first`, checking the last-move mark each time.
async function play(players, first, cells) {
  let turn = first;
  const watchers = Object.values(players);
  for (const c of cells) {
    await click(players[turn], c);
    for (const p of watchers) {
      await seeMark(p, c, turn);
      await p.page.locator(`#board .cell.last[data-cell="${c}"]`).waitFor();
      const last = await lastCell(p);
      check(last === String(c), `${p.label} marks only cell ${c} as the last move (${last})`);
    }
    turn = turn === 'X' ? 'O' : 'X';
  }
}

// The board after the first `n` cells of a round starting with `first`.
function boardAfter(first, cells, n) {
  const b = Array(9).fill('.');
  cells.slice(0, n).forEach((c, i) => {
    b[c] = i % 2 === 0 ? first : (first === 'X' ? 'O' : 'X');
  });
  return b.join('');
}

await spec('score_replay', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');
  const dan = await player(browser, 'Dan');

  step('Ann and Bob start a game on two instances');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  await bob.page.goto(onOrigin(ann.page.url(), env.pinned[1]));
  await waitStatus(ann, /^Your turn \(X\)/);
  check(await ann.page.locator('#moves-empty').isVisible(), 'no moves yet');
  let s = await score(ann);
  check(s.X === '0' && s.O === '0' && s.draws === '0 draws', `the score starts at 0-0 (${JSON.stringify(s)})`);

  step('Round 1: each move is listed and marked as the last; Ann wins');
  const round1 = [0, 3, 1, 4, 2];
  await play({ X: ann, O: bob }, 'X', round1);
  await waitStatus(ann, /^You won!/);
  const list1 = await moveList(bob);
  check(list1 === 'X top left | O left | X top | O center | X top right', `Bob's move list: ${list1}`);
  s = await score(bob);
  check(s.X === '1' && s.O === '0' && s.draws === '0 draws', `Ann leads 1-0 (${JSON.stringify(s)})`);

  step('Round 2 (O starts) ends in a draw; the score keeps round 1');
  await bob.page.getByRole('button', { name: 'Rematch' }).click();
  await ann.page.getByRole('button', { name: 'Accept rematch' }).click();
  await waitStatus(bob, /^Your turn \(O\)/);
  // Ann's page gets round 2 from its own instance, maybe a moment after Bob's: wait for it.
  await waitStatus(ann, /^Bob's turn \(O\)/);
  check(await ann.page.locator('#moves button').count() === 0, 'a new round starts a new move list');
  s = await score(ann);
  check(s.X === '1' && s.O === '0', `the score survives the rematch (${JSON.stringify(s)})`);
  const round2 = [0, 1, 2, 4, 3, 5, 7, 6, 8];
  await play({ X: ann, O: bob }, 'O', round2);
  await waitStatus(ann, /^Draw\./);
  s = await score(ann);
  check(s.X === '1' && s.O === '0' && s.draws === '1 draw', `1-0 and a draw (${JSON.stringify(s)})`);
  check(await ann.page.locator('#moves-title').textContent() === 'Moves of round 2', 'the list names its round');
  const final = await board(ann);
  await shot(ann, 'score_replay-ann-draw');

  step('Dan opens the finished game from its link and replays it move by move');
  await dan.page.goto(onOrigin(ann.page.url(), env.pinned[2]));
  await waitStatus(dan, /^Draw\./);
  await dan.page.locator('#replay-pos', { hasText: 'Move 9 of 9' }).waitFor();
  check(await board(dan) === final, 'Dan first sees the final board');
  await dan.page.getByRole('button', { name: 'Start of the round' }).click();
  await dan.page.locator('#replay-pos', { hasText: 'Start of 9 moves' }).waitFor();
  check(await board(dan) === '.........', 'the replay starts from an empty board');
  for (let n = 1; n <= round2.length; n++) {
    await dan.page.getByRole('button', { name: 'Next move' }).click();
    await dan.page.locator('#replay-pos', { hasText: `Move ${n} of 9` }).waitFor();
    const shown = await board(dan);
    check(shown === boardAfter('O', round2, n), `after move ${n} the board is ${boardAfter('O', round2, n)} (got ${shown})`);
    check(await lastCell(dan) === String(round2[n - 1]), `move ${n} is marked as the last`);
  }
  check(await dan.page.getByRole('button', { name: 'Next move' }).isDisabled(), 'no move after the last');
  await dan.page.getByRole('button', { name: 'Move 4: X center' }).click();
  await dan.page.locator('#replay-pos', { hasText: 'Move 4 of 9' }).waitFor();
  check(await board(dan) === boardAfter('O', round2, 4), 'a move in the list jumps there');
  await dan.page.getByRole('button', { name: 'Previous move' }).click();
  await dan.page.locator('#replay-pos', { hasText: 'Move 3 of 9' }).waitFor();
  check(await board(dan) === boardAfter('O', round2, 3), 'Previous steps back');
  await shot(dan, 'score_replay-dan-replaying');
  await dan.page.getByRole('button', { name: 'End of the round' }).click();
  await dan.page.locator('#replay-pos', { hasText: 'Move 9 of 9' }).waitFor();
  check(await board(dan) === final, 'Last brings the final board back');
  s = await score(dan);
  check(s.X === '1' && s.O === '0' && s.draws === '1 draw', `a spectator sees the score (${JSON.stringify(s)})`);
  noErrors(ann, bob, dan);
});
