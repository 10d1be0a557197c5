// Two players, each pinned through nginx to a different instance: Ann creates a game and
// copies its link, Bob opens it, a third browser watches from the lobby, Ann wins (one move by
// keyboard), both see the result and the winning line, then both ask for a rematch.

import {
  spec, player, env, step, check, shot, connected, instanceOf, rename, seeMark, click,
  statusText, waitStatus, noErrors, onOrigin,
} from './lib.mjs';

await spec('two_players', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');
  const cy = await player(browser, 'Cy', { width: 390, height: 844 });

  step('Ann opens the page on ttt-1, Bob on ttt-2');
  await ann.page.goto(env.pinned[0]);
  await bob.page.goto(env.pinned[1]);
  await rename(ann, 'Ann');
  await rename(bob, 'Bob');
  check(await instanceOf(ann) === 'ttt-1', 'Ann is served by ttt-1');
  check(await instanceOf(bob) === 'ttt-2', 'Bob is served by ttt-2');

  step('Ann creates a game and copies its link');
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  await ann.page.getByRole('button', { name: 'Copy link' }).click();
  const link = await ann.page.evaluate(() => navigator.clipboard.readText());
  check(/\?game=[a-z0-9]+$/.test(link), `the copied link names the game: ${link}`);
  check(link === ann.page.url(), `the link is the page's URL (${link} vs ${ann.page.url()})`);

  step('Bob opens the link (on his own instance)');
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  await connected(bob);
  await bob.page.locator('#players .player[data-mark="O"] .you').waitFor();
  await waitStatus(ann, /^Your turn \(X\)/);
  await waitStatus(bob, /^Ann's turn \(X\)/);
  await ann.page.locator('#players .player[data-mark="O"][data-online="true"]').waitFor();

  step('Cy watches from the lobby of ttt-3');
  await cy.page.goto(env.pinned[2]);
  check(await instanceOf(cy) === 'ttt-3', 'Cy is served by ttt-3');
  await cy.page.getByRole('button', { name: 'Watch Ann vs Bob' }).click();
  await cy.page.locator('#watching', { hasText: 'You are watching' }).waitFor();
  await ann.page.locator('#spectators', { hasText: /^1 spectator$/ }).waitFor();
  const readOnly = await cy.page.locator('#board .cell[aria-disabled="true"]').count();
  check(readOnly === 9, `a spectator's board is read-only (${readOnly} of 9 cells disabled)`);

  step('They play; Ann plays her second move by keyboard');
  await click(ann, 0);
  await seeMark(bob, 0, 'X');
  await click(bob, 3);
  await seeMark(ann, 3, 'O');
  // Focus is on the cell Ann clicked; the arrow key moves it, Enter plays.
  await ann.page.locator('#board .cell[data-cell="1"][aria-disabled="false"]').waitFor();
  await ann.page.keyboard.press('ArrowRight');
  check(await ann.page.evaluate(() => document.activeElement?.dataset.cell) === '1',
    'the arrow key moved focus to the next cell');
  await ann.page.keyboard.press('Enter');
  await seeMark(bob, 1, 'X');
  await click(bob, 4);
  await seeMark(ann, 4, 'O');
  await click(ann, 2);

  step('Both see the result and the winning line');
  await waitStatus(ann, /^You won!/);
  await waitStatus(bob, /^Ann won\./);
  await waitStatus(cy, /^Ann \(X\) won\./);
  for (const p of [ann, bob, cy]) {
    const line = await p.page.locator('#board .cell.win').evaluateAll(
      (cells) => cells.map((c) => c.dataset.cell).join(','),
    );
    check(line === '0,1,2', `${p.label} sees the winning line 0,1,2 (got ${line})`);
  }
  const label = await bob.page.locator('#board .cell[data-cell="2"]').getAttribute('aria-label');
  check(label === 'top right, X, winning line, last move', `cells have spoken names (got "${label}")`);
  await bob.page.waitForFunction(
    () => document.querySelector('#announcer').textContent.includes('X played top right. Ann won.'),
  );
  await shot(ann, 'two_players-ann-won');
  await shot(bob, 'two_players-bob');
  await shot(cy, 'two_players-cy-watching-phone');

  step('Bob asks for a rematch; Ann sees it and accepts; round 2 starts with O');
  await bob.page.getByRole('button', { name: 'Rematch' }).click();
  await ann.page.locator('#rematch-status', { hasText: 'Bob wants a rematch.' }).waitFor();
  await ann.page.getByRole('button', { name: 'Accept rematch' }).click();
  await waitStatus(bob, /^Your turn \(O\)/);
  await waitStatus(ann, /^Bob's turn \(O\)/);
  check((await statusText(cy)).startsWith('Bob to move'), 'Cy sees round 2 start');

  noErrors(ann, bob, cy);
});
