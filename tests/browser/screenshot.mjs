// The README's picture of the page in use: round 2 of a game, with the score of round 1, the
// round's moves (the last one outlined on the board), chat and a spectator.
// Not a test; run against a topology (scripts/topology.sh prints the URL):
//   TTT_URL=http://127.0.0.1:PORT/ node tests/browser/screenshot.mjs docs/screenshot.png

import { chromium } from 'playwright-core';

const url = process.env.TTT_URL;
const out = process.argv[2];
if (!url || !out) {
  console.error('usage: TTT_URL=http://host:port/ node screenshot.mjs OUT.png');
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.TTT_CHROMIUM ?? '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'],
});
try {
  const open = async (name, viewport) => {
    const ctx = await browser.newContext({ viewport, colorScheme: 'light' });
    ctx.setDefaultTimeout(15000);
    await ctx.addInitScript((n) => localStorage.setItem('ttt.name', n), name);
    const page = await ctx.newPage();
    return page;
  };
  const size = { width: 1100, height: 760 };
  const ann = await open('Ann', size);
  const bob = await open('Bob', size);
  const cy = await open('Cy', size);
  const connected = (page) => page.locator('#conn[data-state="connected"]').waitFor();
  await ann.goto(url);
  await connected(ann);
  await ann.getByRole('button', { name: 'New game' }).click();
  await ann.locator('#game-status', { hasText: 'Waiting' }).waitFor();
  await bob.goto(ann.url());
  await cy.goto(url);
  await connected(cy);
  await cy.getByRole('button', { name: 'Watch Ann vs Bob' }).click();
  const play = async (page, i) => {
    await page.locator(`.cell[data-cell="${i}"][aria-disabled="false"]`).click();
    await page.locator(`.cell[data-cell="${i}"]:not([data-mark=""])`).waitFor();
  };
  // Round 1: Ann wins the top row.
  for (const [page, i] of [[ann, 0], [bob, 3], [ann, 1], [bob, 4], [ann, 2]]) await play(page, i);
  await bob.getByRole('button', { name: 'Rematch' }).click();
  await ann.getByRole('button', { name: 'Accept rematch' }).click();
  // Round 2, O first: three moves, then it is Ann's turn.
  for (const [page, i] of [[bob, 4], [ann, 0], [bob, 2]]) await play(page, i);
  await ann.locator('.cell[data-cell="6"][aria-disabled="false"]').waitFor();
  const say = async (page, text) => {
    await page.locator('#game-chat input').fill(text);
    await page.locator('#game-chat input').press('Enter');
    await page.locator('#game-chat .chat-text', { hasText: text }).waitFor();
  };
  await say(ann, 'good luck!');
  await say(bob, 'you too :)');
  await say(cy, 'watching from the lobby');
  await ann.locator('#game-chat .chat-text', { hasText: 'watching from the lobby' }).waitFor();
  await ann.locator('#spectators', { hasText: '1 spectator' }).waitFor();
  // No focus ring from the last line Ann typed.
  await ann.evaluate(() => document.activeElement?.blur());
  await ann.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
