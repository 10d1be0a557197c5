// Names: a newcomer is asked on the first action, with the name it has as the default; one
// who arrives by a link is asked before joining and may just accept; a name typed at the top
// but not saved is applied; a rename during a game reaches the title and the players list of
// everyone in it, on every instance.

import {
  spec, player, env, step, check, shot, connected, rename, waitStatus, noErrors, onOrigin,
} from './lib.mjs';

const title = (p) => p.page.locator('#game-title').textContent();
const seatName = (p, m) => p.page.locator(`#players .player[data-mark="${m}"] .player-name`).textContent();

async function titleIs(p, text) {
  await p.page.locator('#game-title', { hasText: new RegExp(`^${text}$`) }).waitFor();
}

await spec('names', async (browser) => {
  const ann = await player(browser, 'Ann', { named: false });
  const bob = await player(browser, 'Bob', { named: false });
  const cy = await player(browser, 'Cy');

  step('A newcomer is asked for a name on her first action, her default name filled in');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  const annDefault = await ann.page.getByLabel('Your name').inputValue();
  check(/^Player-[a-z0-9]{4}$/.test(annDefault), `a default name is shown (${annDefault})`);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  const dialog = ann.page.getByRole('dialog', { name: 'What should other players call you?' });
  await dialog.waitFor();
  const field = ann.page.getByLabel('Name shown to other players');
  check(await field.inputValue() === annDefault, 'the dialog offers the default name');
  await field.fill('Ann');
  await dialog.getByRole('button', { name: 'Continue' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  await titleIs(ann, 'Ann vs …');
  const renameAt = ann.sent.findIndex((m) => m.type === 'rename' && m.name === 'Ann');
  const createAt = ann.sent.findIndex((m) => m.type === 'create');
  check(renameAt >= 0 && renameAt < createAt, 'the name was applied before the game was created');
  await ann.page.locator('#server-info', { hasText: 'Signed in as Ann ' }).waitFor();

  step('Bob arrives by the link: asked before joining, he accepts the default');
  const link = ann.page.url();
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  const bobDialog = bob.page.getByRole('dialog', { name: 'What should other players call you?' });
  await bobDialog.waitFor();
  check(await bob.page.locator('#lobby').isHidden(), 'the lobby does not flash behind the question');
  const bobDefault = await bob.page.getByLabel('Name shown to other players').inputValue();
  check(/^Player-[a-z0-9]{4}$/.test(bobDefault), `Bob is offered his default name (${bobDefault})`);
  check(!bob.sent.some((m) => m.type === 'join'), 'Bob has not joined before answering');
  await shot(bob, 'names-asked-by-link');
  await bobDialog.getByRole('button', { name: 'Join the game' }).click();
  await waitStatus(bob, /^Ann's turn \(X\)/);
  await titleIs(ann, `Ann vs ${bobDefault}`);
  check(await seatName(ann, 'O') === bobDefault, 'Ann sees Bob under his default name');

  step('Asked once: a reload does not ask again');
  await bob.page.reload();
  await waitStatus(bob, /^Ann's turn \(X\)/);
  check(!(await bob.page.locator('#name-dialog').evaluate((d) => d.open)), 'no question after a reload');

  step('Cy watches from a third instance');
  await cy.page.goto(onOrigin(link, env.pinned[2]));
  await cy.page.locator('#watching', { hasText: 'You are watching' }).waitFor();
  await titleIs(cy, `Ann vs ${bobDefault}`);

  step('Bob renames during the game: everyone\'s title and players list follow');
  await rename(bob, 'Bob');
  for (const p of [ann, bob, cy]) {
    await titleIs(p, 'Ann vs Bob');
    check(await seatName(p, 'O') === 'Bob', `${p.label}'s players list says Bob`);
  }
  await ann.page.waitForFunction(
    (was) => document.querySelector('#announcer').textContent.includes(`${was} is now called Bob.`),
    bobDefault,
  );
  const renamed = bob.sent.filter((m) => m.type === 'rename');
  check(renamed.length === 1 && !bob.sent.some((m) => m.type === 'hello' && m.name === 'Bob'),
    'the rename went as a rename message, not as a reconnect');
  await shot(ann, 'names-renamed');

  step('A name typed at the top but not saved is used for a new game');
  await cy.page.getByRole('button', { name: 'Leave' }).click();
  await cy.page.getByLabel('Your name').fill('Cyrus');
  await cy.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(cy, /Waiting for an opponent/);
  await titleIs(cy, 'Cyrus vs …');
  check(!(await cy.page.locator('#name-dialog').evaluate((d) => d.open)), 'Cy, who chose a name before, is not asked');
  await cy.page.locator('#server-info', { hasText: 'Signed in as Cyrus ' }).waitFor();
  noErrors(ann, bob, cy);
});
