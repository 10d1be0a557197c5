// A whole game by keyboard on one side, on a desktop and on a phone: Tab reaches New game and
// then the board (entered on its centre, with a visible focus ring), the number keys and the
// arrows (wrapping at the edges) choose a cell, Enter and Space play it; the opponent's moves
// and the result are read out by the page's live region, and focus never leaves the board.

import {
  spec, player, env, step, check, connected, waitStatus, click, seeMark, noErrors, onOrigin,
  shot, DESKTOP, PHONE, WAIT_MS,
} from './lib.mjs';

// Presses `key` until `pred` holds in the page (at most `max` times); returns how many presses.
async function pressUntil(p, key, pred, max, what) {
  for (let n = 0; n <= max; n++) {
    if (await p.page.evaluate(pred)) return n;
    if (n < max) await p.page.keyboard.press(key);
  }
  throw new Error(`${p.label}: ${what} not reached after ${max} presses of ${key}`);
}

const focusedCell = () => {
  const a = document.activeElement;
  return a?.classList.contains('cell') ? Number(a.dataset.cell) : null;
};

async function announced(p, text) {
  await p.page.waitForFunction(
    (t) => [...document.querySelectorAll('#announcer p')].some((e) => e.textContent.includes(t)),
    text,
    { timeout: WAIT_MS },
  );
}

// A whole game by keyboard on one side, at one size.
async function keyboardGame(browser, size) {
  const dee = await player(browser, 'Dee', { width: size.width, height: size.height });
  const eve = await player(browser, 'Eve');

  step(`${size.size}: Dee starts a game with the keyboard only`);
  await dee.page.goto(env.pinned[0]);
  await connected(dee);
  await pressUntil(dee, 'Tab', () => document.activeElement?.id === 'new-game', 12, 'New game');
  await dee.page.keyboard.press('Enter');
  await waitStatus(dee, /^Waiting for an opponent/);
  await eve.page.goto(onOrigin(dee.page.url(), env.pinned[1]));
  await waitStatus(dee, /^Your turn \(X\)\.$/);

  step(`${size.size}: Tab reaches the board; Enter plays the centre`);
  const tabs = await pressUntil(dee, 'Tab', focusedCell, 6, 'the board');
  check(await dee.page.evaluate(focusedCell) === 4, 'the board is entered on its centre');
  const ring = await dee.page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  check(ring !== 'none', `the focused cell shows a focus ring (${ring})`);
  step(`the board took ${tabs} Tab press(es) from the game heading`);
  await dee.page.keyboard.press('Enter');
  await seeMark(eve, 4, 'X');

  step(`${size.size}: Eve's move is read out; number keys and Space play the top right`);
  await click(eve, 0);
  await announced(dee, 'O played top left.');
  await waitStatus(dee, /^Your turn \(X\)\.$/);
  await dee.page.keyboard.press('3');
  check(await dee.page.evaluate(focusedCell) === 2, 'the key 3 moves to the top right cell');
  await dee.page.keyboard.press('Space');
  await seeMark(eve, 2, 'X');

  step(`${size.size}: arrows move (wrapping around the edges); Enter wins`);
  await click(eve, 1);
  await announced(dee, 'O played top.');
  await waitStatus(dee, /^Your turn \(X\)\.$/);
  await dee.page.keyboard.press('ArrowDown');
  await dee.page.keyboard.press('ArrowDown');
  check(await dee.page.evaluate(focusedCell) === 8, 'two arrows down from the top right: bottom right');
  await dee.page.keyboard.press('ArrowRight');
  check(await dee.page.evaluate(focusedCell) === 6, 'right from the right edge wraps to bottom left');
  await dee.page.keyboard.press('Enter');
  await waitStatus(dee, /^You won!$/);
  await announced(dee, 'X played bottom left. You won!');
  await announced(eve, 'X played bottom left. Dee won.');
  check(await dee.page.evaluate(focusedCell) === 6, 'focus stays on the board after the last move');
  await shot(dee, 'won-by-keyboard');
  noErrors(dee, eve);
  for (const p of [dee, eve]) await p.context.close();
}

await spec('keyboard', async (browser) => {
  for (const size of [DESKTOP, PHONE]) await keyboardGame(browser, size);
});
