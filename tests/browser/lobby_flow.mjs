// The lobby's ways into a game, and the ways out: quick match (with cancel), resign, leave,
// and joining an open game from the lobby's list. Then a browser that goes offline.

import {
  spec, player, env, step, check, shot, rename, waitStatus, noErrors, click, seeMark,
} from './lib.mjs';

await spec('lobby_flow', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob', { width: 360, height: 740 });
  await ann.page.goto(env.url);
  await bob.page.goto(env.url);
  await rename(ann, 'Ann');
  await rename(bob, 'Bob');

  step('Ann looks for a match, cancels, and looks again');
  await ann.page.getByRole('button', { name: 'Quick match' }).click();
  await ann.page.locator('#match-status', { hasText: 'Looking for an opponent' }).waitFor();
  await ann.page.getByRole('button', { name: 'Cancel' }).click();
  await ann.page.getByRole('button', { name: 'Quick match' }).waitFor();
  await ann.waitSent((m) => m.type === 'cancel_match', 'cancel_match');
  await ann.page.getByRole('button', { name: 'Quick match' }).click();
  await ann.page.getByRole('button', { name: 'Cancel' }).waitFor();

  step('Bob looks for a match: they are paired, Ann (who waited longer) as X');
  await bob.page.getByRole('button', { name: 'Quick match' }).click();
  await waitStatus(ann, /^Your turn \(X\)/);
  await waitStatus(bob, /^Ann's turn \(X\)/);
  check(ann.page.url().includes('?game='), 'the page URL names the matched game');

  step('Ann resigns (the button asks first)');
  await ann.page.getByRole('button', { name: 'Resign' }).click();
  await ann.page.getByRole('button', { name: 'Really resign?' }).click();
  await waitStatus(bob, /^You won! Ann resigned\./);
  // The loser reads about herself in the second person (issue 23), not "Ann resigned".
  await waitStatus(ann, /^You lost: you resigned\.$/);
  await shot(bob, 'lobby_flow-bob-won-phone');

  step('Ann leaves for the lobby, opens a new game and cancels it before anyone joins');
  await ann.page.getByRole('button', { name: 'Leave' }).click();
  await ann.page.locator('#lobby:not([hidden])').waitFor();
  check(!ann.page.url().includes('?game='), 'leaving drops the game from the URL');
  check(await ann.page.evaluate(() => document.activeElement?.id) === 'lobby-title',
    'focus moves to the lobby heading');
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  const create = await ann.waitSent((m) => m.type === 'create', 'create');
  check(/^c-[0-9a-f]{24}$/.test(create.cid ?? ''), `a new game carries a create id (${create.cid})`);
  await ann.page.getByRole('button', { name: 'Cancel game' }).click();
  await waitStatus(ann, /^You cancelled this game\.$/);
  await ann.page.getByRole('button', { name: 'Cancel game' }).waitFor({ state: 'hidden' });
  await ann.page.getByRole('button', { name: 'Leave' }).click();
  await ann.page.locator('#lobby:not([hidden])').waitFor();

  step('Ann opens another game; Bob leaves and joins it from the list');
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  await bob.page.getByRole('button', { name: 'Leave' }).click();
  await bob.page.getByRole('button', { name: 'Join Ann is waiting' }).click();
  await waitStatus(bob, /^Ann's turn \(X\)/);
  await waitStatus(ann, /^Your turn \(X\)/);
  await shot(ann, 'lobby_flow-ann');

  step('Bob\'s browser loses the network: the page says offline, then reconnects at once');
  await bob.context.setOffline(true);
  await bob.page.locator('#conn[data-state="offline"]', { hasText: 'Offline' }).waitFor();
  await waitStatus(bob, /Waiting for the connection\.$/);
  await bob.context.setOffline(false);
  await bob.page.locator('#conn[data-state="connected"]').waitFor();
  await waitStatus(bob, /^Ann's turn \(X\)\.$/);
  await click(ann, 4);
  await seeMark(bob, 4, 'X');
  noErrors(ann, bob);
});
