// A phone (390 x 844): the header is one compact row, the board comes first and the game chat
// is folded right under it, with a badge counting the lines that arrived while folded.

import {
  spec, player, env, step, check, shot, connected, waitStatus, noErrors, onOrigin,
} from './lib.mjs';

async function say(p, text) {
  const input = p.page.locator('#game-chat input[name="text"]');
  await input.fill(text);
  await input.press('Enter');
}

await spec('mobile', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob', { width: 390, height: 844 });

  step('Bob\'s header is one row on a phone');
  await bob.page.goto(env.pinned[1]);
  await connected(bob);
  const header = await bob.page.evaluate(() => {
    const top = document.querySelector('.top');
    const kids = [...top.children].filter((k) => k.offsetParent !== null);
    const boxes = kids.map((k) => k.getBoundingClientRect());
    return {
      height: top.getBoundingClientRect().height,
      // One row: every item overlaps every other vertically.
      oneRow: Math.max(...boxes.map((r) => r.top)) < Math.min(...boxes.map((r) => r.bottom)),
      tops: kids.map((k, i) => `${k.className || k.id}@${Math.round(boxes[i].top)}-${Math.round(boxes[i].bottom)}`),
    };
  });
  check(header.height <= 56, `the header is compact (${header.height} px high)`);
  check(header.oneRow, `the header items share one row: ${header.tops.join(', ')}`);
  await bob.page.getByLabel('Your name').waitFor();

  step('Ann creates a game on a desktop, Bob joins by the link');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  await bob.page.goto(onOrigin(ann.page.url(), env.pinned[1]));
  await waitStatus(bob, /^Ann's turn \(X\)/);

  step('On the phone the chat is folded right under the board, above the players');
  const toggle = bob.page.getByRole('button', { name: /^Game chat/ });
  await toggle.waitFor();
  check(await toggle.getAttribute('aria-expanded') === 'false', 'the chat starts folded');
  check(await bob.page.locator('#game-chat .chat-lines').isHidden(), 'folded lines are hidden');
  const pos = await bob.page.evaluate(() => {
    const r = (s) => document.querySelector(s).getBoundingClientRect();
    return { actions: r('.play .actions').bottom, toggle: r('#game-chat .chat-toggle').top, players: r('#players').top };
  });
  check(pos.toggle > pos.actions && pos.toggle - pos.actions < 80,
    `the chat toggle is right under the board's buttons (${pos.actions} -> ${pos.toggle})`);
  check(pos.toggle < pos.players, 'the chat comes before the players list');
  check(pos.toggle < 844, `the chat toggle is above the fold (y = ${pos.toggle})`);
  await shot(bob, 'mobile-folded');

  step('Lines that arrive while folded are counted in a badge');
  await say(ann, 'hello Bob');
  await bob.page.getByRole('button', { name: 'Game chat, 1 unread' }).waitFor();
  await say(ann, 'your move next');
  await bob.page.getByRole('button', { name: 'Game chat, 2 unread' }).waitFor();
  check(await bob.page.locator('#game-chat .chat-toggle .badge').textContent() === '2', 'the badge shows 2');
  await shot(bob, 'mobile-badge');

  step('Opening the chat shows the lines and clears the badge');
  await toggle.click();
  check(await toggle.getAttribute('aria-expanded') === 'true', 'the chat is open');
  await bob.page.locator('#game-chat .chat-text', { hasText: 'your move next' }).waitFor({ state: 'visible' });
  check(await bob.page.locator('#game-chat .chat-toggle .badge').count() === 0, 'the badge is gone');
  await say(bob, 'hi Ann');
  await ann.page.locator('#game-chat .chat-text', { hasText: 'hi Ann' }).waitFor();
  await say(ann, 'good luck');
  await bob.page.locator('#game-chat .chat-text', { hasText: 'good luck' }).waitFor();
  check(await bob.page.locator('#game-chat .chat-toggle .badge').count() === 0, 'no badge while the chat is open');

  step('On a desktop the chat is never folded');
  check(await ann.page.locator('#game-chat .chat-toggle').first().isHidden(), 'no chat toggle on a desktop');
  check(await ann.page.locator('#game-chat .chat-lines').isVisible(), 'the lines show on a desktop');
  await shot(bob, 'mobile-open');
  noErrors(ann, bob);
});
