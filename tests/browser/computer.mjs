// A game against the computer, from the lobby: the level is chosen, the game opens like any
// (its link in the address bar), the computer's seat is labelled with its level and never
// shown away, "thinking…" shows while it is its turn, the round is played to its end, the
// computer accepts a rematch by itself and opens round 2, and the player can resign. A
// spectator on a phone finds the game in the lobby with its terms.

import {
  spec, player, env, step, check, connected, shot, view, waitStatus, statusText, seeMark, noErrors,
} from './lib.mjs';

const COMPUTER = 'Computer (perfect)';

const boardOf = (p) => p.page.locator('#board .cell').evaluateAll(
  (cells) => cells.map((c) => c.dataset.mark || '.').join(''),
);

// Plays the first free cell each time it is the player's turn, until the round is over.
async function playOut(p) {
  for (let i = 0; i < 5; i++) {
    await waitStatus(p, /^(Your turn \(X\)\.|Draw\.|.* won\.|You won!)/);
    const status = await statusText(p);
    if (!status.startsWith('Your turn')) return status;
    const board = await boardOf(p);
    const free = board.indexOf('.');
    await p.page.locator(`#board .cell[data-cell="${free}"][aria-disabled="false"]`).click();
    // Acknowledged: the status no longer says it is the player's turn.
    await seeMark(p, free, 'X');
    await p.page.waitForFunction(() => !/^Your turn/.test(document.querySelector('#game-status').textContent));
    // The computer's seat is never away: no countdown, whatever its presence says.
    check(await p.page.locator('#away-status').isHidden(), 'no away countdown for the computer');
  }
  await waitStatus(p, /^(Draw\.|.* won\.|You won!)/);
  return statusText(p);
}

await spec('computer', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob', { width: 390, height: 844 });

  step('Ann chooses the perfect level and plays the computer');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.locator('#computer-level').selectOption('perfect');
  await ann.page.getByRole('button', { name: 'Play the computer', exact: true }).click();
  await waitStatus(ann, /^Your turn \(X\)\.$/);
  check(ann.page.url().includes('?game='), 'the game is in the address bar like any');
  const create = await ann.waitSent((m) => m.type === 'create', 'create');
  check(create.computer === 'perfect' && /^c-/.test(create.cid ?? ''), `create asks for the perfect computer (${JSON.stringify(create)})`);
  const o = ann.page.locator('#players .player[data-mark="O"]');
  await o.locator('.player-name', { hasText: COMPUTER }).waitFor();
  check(await o.getAttribute('data-computer') === 'perfect', 'the computer\'s seat carries its level');
  check((await o.locator('.presence').textContent()) === 'computer · perfect', 'its label names the level');
  check(await ann.page.locator('#game-terms').textContent() === 'Casual', 'a game against the computer is casual');
  check(await ann.page.locator('#away-status').isHidden(), 'the computer is not away');
  await view(ann, 'computer-playing');

  step('Ann moves; the computer thinks, then answers');
  await ann.page.locator('#board .cell[data-cell="0"]').click();
  await waitStatus(ann, /^Computer \(perfect\) is thinking…$/);
  await o.locator('.presence', { hasText: 'thinking…' }).waitFor();
  await shot(ann, 'computer-thinking');
  await waitStatus(ann, /^Your turn \(X\)\.$/);
  check((await boardOf(ann)).split('O').length === 2, 'the computer played one O');

  step('Bob finds the game in the lobby with its terms and watches');
  await bob.page.goto(env.pinned[1]);
  await connected(bob);
  const entry = bob.page.locator('#live-games .game-item', { hasText: COMPUTER });
  await entry.locator('.tag', { hasText: 'Computer · perfect' }).waitFor();
  await entry.getByRole('button', { name: /^Watch Ann vs Computer \(perfect\)/ }).click();
  await bob.page.locator('#watching').waitFor();
  check(await bob.page.locator('#away-status').isHidden(), 'the spectator sees no countdown for the computer');
  await view(bob, 'computer-spectator');

  step('The round is played to its end: the perfect computer never loses');
  const end = await playOut(ann);
  check(/^(Draw\.|Computer \(perfect\) won\.)$/.test(end), `the perfect level did not lose (${end})`);
  await waitStatus(bob, /^(Draw\.|Computer \(perfect\) \(O\) won\.)/);
  await view(ann, 'computer-finished');

  step('Rematch: the computer agrees by itself and opens round 2');
  await ann.page.getByRole('button', { name: 'Rematch' }).click();
  await ann.page.locator('#game-title', { hasText: 'round 2' }).waitFor();
  await waitStatus(ann, /^Your turn \(X\)\.$/);
  const opened = await ann.page.locator('#moves button').evaluateAll((bs) => bs.map((b) => b.dataset.mark));
  check(opened.length === 1 && opened[0] === 'O', `the computer made round 2's first move (${opened})`);
  await waitStatus(bob, /^Ann to move \(X\)\.$/);

  step('Ann resigns round 2');
  await ann.page.getByRole('button', { name: 'Resign' }).click();
  await ann.page.getByRole('button', { name: 'Really resign?' }).click();
  await waitStatus(ann, /^You lost: you resigned\.$/);
  await waitStatus(bob, /^Computer \(perfect\) \(O\) won\. Ann resigned\.$/);
  noErrors(ann, bob);
});
