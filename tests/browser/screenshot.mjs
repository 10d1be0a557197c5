// The README's picture of the page in use: a game in progress with chat and a spectator.
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
  const ann = await open('Ann', { width: 1100, height: 720 });
  const bob = await open('Bob', { width: 1100, height: 720 });
  const cy = await open('Cy', { width: 1100, height: 720 });
  await ann.goto(url);
  await ann.getByRole('button', { name: 'New game' }).click();
  await ann.locator('#game-status', { hasText: 'Waiting' }).waitFor();
  await bob.goto(ann.url());
  await cy.goto(url);
  await cy.getByRole('button', { name: 'Watch Ann vs Bob' }).click();
  const play = async (page, i) => {
    await page.locator(`.cell[data-cell="${i}"][aria-disabled="false"]`).click();
    await page.locator(`.cell[data-cell="${i}"]:not([data-mark=""])`).waitFor();
  };
  await play(ann, 4);
  await play(bob, 0);
  await play(ann, 2);
  await bob.locator('.cell[data-cell="6"][aria-disabled="false"]').waitFor();
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
  await ann.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
}
