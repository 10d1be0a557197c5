// A quick match whose opponent never arrives is aborted by the server; the page then queues
// its player again by itself, and the next player to ask is paired with it.
//
// The absent opponent: Cy queues on ttt-1, which is then killed -9. Its ticket stays fresh in
// Redis for LEASE_TTL_MS, so Ann (asking at once) is paired with a player who is gone.

import { spec, player, env, step, check, shot, instanceOf, rename, waitStatus, noErrors } from './lib.mjs';

await spec('quick_match_abort', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');
  const cy = await player(browser, 'Cy');
  await ann.page.goto(env.pinned[1]);
  await bob.page.goto(env.pinned[2]);
  await cy.page.goto(env.pinned[0]);
  await rename(ann, 'Ann');
  await rename(bob, 'Bob');
  await rename(cy, 'Cy');
  check(await instanceOf(cy) === 'ttt-1', 'Cy is on ttt-1');

  step('Cy waits for a match on ttt-1; ttt-1 is killed');
  await cy.page.getByRole('button', { name: 'Quick match' }).click();
  await cy.page.locator('#match-status', { hasText: 'Looking for an opponent' }).waitFor();
  await cy.waitSent((m) => m.type === 'quick_match', 'quick_match');
  process.kill(env.pids['ttt-1'], 'SIGKILL');

  step('Ann asks at once and is paired with the departed Cy');
  await ann.page.getByRole('button', { name: 'Quick match' }).click();
  await waitStatus(ann, /^Cy's turn \(X\)/);
  await ann.page.locator('#players .player[data-mark="X"][data-online="false"]').waitFor();

  step('The match is aborted; Ann\'s page queues again by itself');
  await ann.page.locator('#notice', { hasText: 'never arrived' }).waitFor();
  await ann.page.locator('#match-status', { hasText: 'Looking for an opponent' }).waitFor();
  const asks = ann.sent.filter((m) => m.type === 'quick_match').length;
  check(asks === 2, `the page asked for a match again without a click (${asks} requests)`);
  await shot(ann, 'quick_match_abort-ann-requeued');

  step('Bob asks and is paired with Ann');
  await bob.page.getByRole('button', { name: 'Quick match' }).click();
  await waitStatus(ann, /^Your turn \(X\)/);
  await waitStatus(bob, /^Ann's turn \(X\)/);
  noErrors(ann, bob);
});
