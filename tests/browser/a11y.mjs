// Accessibility, checked by an engine and by the keyboard. axe-core's WCAG 2.1 A and AA rules
// run on every view (lobby, name dialog, waiting, playing, the away countdown, offline, a
// spectator, finished for the winner and the loser, replay), at a desktop size and on a phone
// (390 x 844), the phone also in the dark colour scheme; any violation fails. Each view's
// screenshot is kept (see `view` in lib.mjs). The keyboard is keyboard.mjs's.

import {
  spec, player, env, step, check, connected, waitStatus, click, seeMark, noErrors, onOrigin,
  view, audit, DESKTOP, PHONE, PHONE_DARK,
} from './lib.mjs';

// Every view of the page, at one size.
async function views(browser, size) {
  const opts = { width: size.width, height: size.height, scheme: size.scheme };
  const ann = await player(browser, 'Ann', { ...opts, named: false });
  const bob = await player(browser, 'Bob', opts);
  const cy = await player(browser, 'Cy', opts);

  step(`${size.size}: the lobby, then the name dialog of a newcomer`);
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.locator('#lobby-chat .chat-toggle').waitFor({ state: 'attached' });
  await view(ann, 'lobby');
  if (size === DESKTOP) {
    // The audit must be able to fail: a field without a label, planted for a moment.
    await ann.page.evaluate(() => document.querySelector('main').append(
      Object.assign(document.createElement('input'), { id: 'planted' }),
    ));
    const caught = await audit(ann, 'the lobby with a planted field').then(() => null, (e) => e.message);
    check(caught && /\blabel\b/.test(caught) && caught.includes('#planted'),
      `axe-core reports the planted unlabelled field (${caught})`);
    step('axe-core reports a planted violation as it should');
    await ann.page.evaluate(() => document.getElementById('planted').remove());
  }
  await ann.page.getByRole('button', { name: 'New game' }).click();
  const dialog = ann.page.getByRole('dialog', { name: 'What should other players call you?' });
  await dialog.waitFor();
  await view(ann, 'name-dialog');
  await ann.page.getByLabel('Name shown to other players').fill('Ann');
  await dialog.getByRole('button', { name: 'Continue' }).click();

  step(`${size.size}: waiting, playing, a spectator`);
  await waitStatus(ann, /^Waiting for an opponent: share the link\.$/);
  await view(ann, 'waiting');
  const link = ann.page.url();
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  await waitStatus(bob, /^Ann's turn \(X\)\.$/);
  await click(ann, 4);
  await seeMark(bob, 4, 'X');
  await waitStatus(bob, /^Your turn \(O\)\.$/);
  await view(bob, 'playing');
  await cy.page.goto(onOrigin(link, env.pinned[2]));
  await cy.page.locator('#watching').waitFor();
  await seeMark(cy, 4, 'X');
  await view(cy, 'spectator');

  step(`${size.size}: Bob offline; Ann sees his countdown`);
  await bob.context.setOffline(true);
  await bob.page.locator('#conn[data-state="reconnecting"], #conn[data-state="offline"]').waitFor();
  await waitStatus(bob, /Waiting for the connection\.$/);
  await view(bob, 'offline');
  await ann.page.locator('#away-status:not([hidden])').waitFor();
  await view(ann, 'away');
  await bob.context.setOffline(false);
  await connected(bob);
  await ann.page.locator('#away-status').waitFor({ state: 'hidden' });

  step(`${size.size}: Ann wins; both players' finished views, then a replay`);
  await click(bob, 0);
  await click(ann, 2);
  await click(bob, 1);
  await click(ann, 6);
  await waitStatus(ann, /^You won!$/);
  await waitStatus(bob, /^Ann won\.$/);
  await ann.page.evaluate(() => document.activeElement?.blur());
  await view(ann, 'finished-winner');
  await view(bob, 'finished-loser');
  await cy.page.getByRole('button', { name: 'Start of the round' }).click();
  await cy.page.locator('#replay-pos', { hasText: 'Start of 5 moves' }).waitFor();
  await cy.page.getByRole('button', { name: 'Next move' }).click();
  await cy.page.locator('#replay-pos', { hasText: 'Move 1 of 5' }).waitFor();
  await view(cy, 'replay');
  noErrors(ann, bob, cy);
  for (const p of [ann, bob, cy]) await p.context.close();
}

await spec('a11y', async (browser) => {
  // The phone once more in the dark colour scheme (the page follows the system's).
  for (const size of [DESKTOP, PHONE, PHONE_DARK]) await views(browser, size);
});
