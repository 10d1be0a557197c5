// Feedback where the eye is, without moving the page: a chat line over the limit is refused in
// place (red count, Send disabled, said to screen readers), "Link copied" is confirmed on the
// button, the right column keeps its place whatever the status says, and arriving by a link
// moves focus without drawing a ring.

import {
  spec, player, env, step, check, shot, connected, waitStatus, click, noErrors, onOrigin,
} from './lib.mjs';

// Where an element is, rounded to the pixel.
async function box(p, selector) {
  const b = await p.page.locator(selector).boundingBox();
  check(b, `${selector} is on screen for ${p.label}`);
  return { x: Math.round(b.x), y: Math.round(b.y), w: Math.round(b.width), h: Math.round(b.height) };
}

const same = (a, b) => a.x === b.x && a.y === b.y && a.w === b.w && a.h === b.h;

await spec('feedback', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');

  step('Ann creates a game; the right column is placed');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /^Waiting for an opponent: share the link\.$/);
  const sides = [['waiting', (await box(ann, '.side')).x]];

  step('Copy link: confirmed on the button, nothing else moves');
  const before = {
    button: await box(ann, '#copy-link'),
    board: await box(ann, '#board'),
    chat: await box(ann, '#game-chat'),
  };
  await ann.page.getByRole('button', { name: 'Copy link' }).click();
  await ann.page.locator('#copy-link', { hasText: 'Copied' }).waitFor();
  const after = {
    button: await box(ann, '#copy-link'),
    board: await box(ann, '#board'),
    chat: await box(ann, '#game-chat'),
  };
  for (const k of Object.keys(before)) {
    check(same(before[k], after[k]),
      `${k} did not move or resize: ${JSON.stringify(before[k])} -> ${JSON.stringify(after[k])}`);
  }
  check(await ann.page.locator('#notice').isHidden(), 'no notice at the top for a copied link');
  await ann.page.waitForFunction(
    () => document.querySelector('#announcer').textContent.includes('Link copied.'),
  );
  await shot(ann, 'feedback-copied');
  await ann.page.locator('#copy-link', { hasText: /^Copy link$/ }).waitFor();
  const link = await ann.page.evaluate(() => navigator.clipboard.readText());

  step('Bob arrives by the link: focus is on the game heading, with no ring');
  await bob.page.goto(onOrigin(link, env.pinned[1]));
  await waitStatus(bob, /^Ann's turn \(X\)\.$/);
  const focus = await bob.page.evaluate(() => {
    const a = document.activeElement;
    const cs = getComputedStyle(a);
    return { id: a.id, outline: cs.outlineStyle, width: cs.outlineWidth };
  });
  check(focus.id === 'game-title', `focus moved to the game heading (${focus.id})`);
  check(focus.outline === 'none' || focus.width === '0px',
    `the focused heading shows no ring (${focus.outline} ${focus.width})`);

  step('The right column stays put as the status text changes');
  await waitStatus(ann, /^Your turn \(X\)\.$/);
  sides.push(['your turn', (await box(ann, '.side')).x]);
  await click(ann, 0);
  await waitStatus(ann, /^Bob's turn \(O\)\.$/);
  sides.push(['their turn', (await box(ann, '.side')).x]);
  await click(bob, 3);
  await click(ann, 1);
  await click(bob, 4);
  await click(ann, 2);
  await waitStatus(ann, /^You won!/);
  sides.push(['won', (await box(ann, '.side')).x]);
  await waitStatus(bob, /^Ann won\./);
  const bobSide = (await box(bob, '.side')).x;
  check(sides.every(([, x]) => x === sides[0][1]) && bobSide === sides[0][1],
    `the right column keeps x = ${sides[0][1]} (${sides.map(([s, x]) => `${s}: ${x}`).join(', ')}, Bob: ${bobSide})`);

  step('A chat line over the limit: red count, Send disabled, announced once');
  const input = ann.page.locator('#game-chat input[name="text"]');
  const send = ann.page.locator('#game-chat button[type="submit"]');
  const count = ann.page.locator('#game-chat .chat-count');
  await input.fill('x'.repeat(280));
  check(await count.textContent() === '280/280', 'the count shows 280/280');
  check(!(await send.isDisabled()), 'Send is enabled at the limit');
  const grey = await count.evaluate((e) => getComputedStyle(e).color);
  await input.press('y');
  await ann.page.locator('#game-chat .chat-count.over', { hasText: '281/280' }).waitFor();
  check(await send.isDisabled(), 'Send is disabled over the limit');
  check(await input.getAttribute('aria-invalid') === 'true', 'the input is marked invalid');
  const red = await count.evaluate((e) => getComputedStyle(e).color);
  check(red !== grey, `the count changes colour over the limit (${grey} -> ${red})`);
  check(red === 'rgb(179, 38, 30)', `the count is red (${red})`);
  await ann.page.waitForFunction(
    () => document.querySelector('#announcer').textContent.includes('Too long: 281 of 280 characters'),
  );
  await input.press('Enter');
  check(!ann.sent.some((m) => m.type === 'chat'), 'Enter sends nothing over the limit');
  await shot(ann, 'feedback-chat-over');
  await input.press('Backspace');
  await ann.page.locator('#game-chat button[type="submit"]:not([disabled])').waitFor();
  check(!(await count.evaluate((e) => e.classList.contains('over'))), 'the count is no longer red');
  await input.press('Enter');
  await bob.page.locator('#game-chat .chat-text', { hasText: 'x'.repeat(280) }).waitFor();
  noErrors(ann, bob);
});
