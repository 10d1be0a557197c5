// Quick match with nobody else around: after the wait the quick_match ack names
// (QUICK_MATCH_COMPUTER_MS, short here), the page offers the computer with a level choice. The
// player may keep waiting, or play: the page leaves the queue, then creates the game. The offer
// never shows once the player cancelled.

import { spec, player, env, step, check, connected, view, waitStatus, noErrors } from './lib.mjs';

const OFFER_MS = 1500;

await spec('computer_offer', async (browser) => {
  const cy = await player(browser, 'Cy');

  step('Cy looks for a match: nobody comes, the computer is offered');
  await cy.page.goto(env.pinned[0]);
  await connected(cy);
  await cy.page.getByRole('button', { name: 'Quick match' }).click();
  await cy.page.locator('#match-status', { hasText: 'Looking for an opponent' }).waitFor();
  check(await cy.page.locator('#computer-offer').isHidden(), 'no offer at once');
  const offer = cy.page.getByRole('group', { name: 'Nobody yet — play the computer?' });
  await offer.waitFor();
  await view(cy, 'computer-offer');

  step('Keep waiting hides the offer and leaves Cy in the queue');
  await offer.getByRole('button', { name: 'Keep waiting' }).click();
  await offer.waitFor({ state: 'hidden' });
  check(await cy.page.locator('#match-status', { hasText: 'Looking for an opponent' }).isVisible(), 'still waiting');
  check(!cy.sent.some((m) => m.type === 'cancel_match'), 'keeping on waiting cancels nothing');

  step('Cancelled before the wait is over, no offer comes');
  await cy.page.getByRole('button', { name: 'Cancel' }).click();
  await cy.page.getByRole('button', { name: 'Quick match' }).click();
  await cy.page.getByRole('button', { name: 'Cancel' }).click();
  await cy.page.waitForTimeout(OFFER_MS + 1000);
  check(await cy.page.locator('#computer-offer').isHidden(), 'no offer after cancelling');

  step('Asked again, Cy takes the offer at the easy level');
  await cy.page.getByRole('button', { name: 'Quick match' }).click();
  await offer.waitFor();
  await offer.getByLabel('Level').selectOption('easy');
  const before = cy.sent.length;
  await offer.getByRole('button', { name: 'Play the computer now' }).click();
  await waitStatus(cy, /^Your turn \(X\)\.$/);
  const asked = cy.sent.slice(before).map((m) => m.type);
  check(asked[0] === 'cancel_match' && asked.includes('create'), `the queue is left, then the game made (${asked})`);
  const create = cy.sent.slice(before).find((m) => m.type === 'create');
  check(create.computer === 'easy', `at the chosen level (${JSON.stringify(create)})`);
  await cy.page.locator('#players .player[data-mark="O"][data-computer="easy"]').waitFor();

  step('Back in the lobby nothing is offered and the level is remembered');
  await cy.page.getByRole('button', { name: 'Leave' }).click();
  await cy.page.locator('#lobby:not([hidden])').waitFor();
  check(await cy.page.locator('#computer-offer').isHidden(), 'the offer is gone');
  check(await cy.page.locator('#computer-level').inputValue() === 'easy', 'the lobby shows the level chosen last');
  noErrors(cy);
});
