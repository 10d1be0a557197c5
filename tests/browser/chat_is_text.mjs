// Chat lines and names are user data: markup in them must show as text and never run, in the
// lobby chat and in a game's chat, for the sender and for the reader. And a sender over the
// chat budget (3 lines, then 1 every 10 s) keeps the text until the server's retry_after_ms.

import {
  spec, player, env, step, check, shot, connected, rename, waitStatus, noErrors, onOrigin,
} from './lib.mjs';

const PAYLOAD = '<img src=x onerror=alert(1)>';
const NAME = '<b>Eve</b>';

async function say(p, chatId, text) {
  const input = p.page.locator(`#${chatId} input[name="text"]`);
  await input.fill(text);
  await input.press('Enter');
}

// Waits until a chat shows a line whose text is exactly `text`; returns its sender as shown.
async function seeLine(p, chatId, text) {
  // The whole text, not a part: "one" must not find the line "<img ... onerror=...>".
  const exact = new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const line = p.page.locator(`#${chatId} .chat-line`).filter({
    has: p.page.locator('.chat-text', { hasText: exact }),
  }).last();
  await line.waitFor();
  const shown = await line.locator('.chat-text').textContent();
  check(shown === text, `${p.label} shows the line as typed: ${JSON.stringify(shown)}`);
  return line.locator('.chat-from').textContent();
}

async function noMarkup(p) {
  const found = await p.page.evaluate(() => ({
    imgs: document.querySelectorAll('img').length,
    bold: document.querySelectorAll('.chat-lines b, #players b, #server-info b').length,
  }));
  check(found.imgs === 0, `${p.label}: no <img> element in the page (found ${found.imgs})`);
  check(found.bold === 0, `${p.label}: no <b> element from a name (found ${found.bold})`);
}

await spec('chat_is_text', async (browser) => {
  const eve = await player(browser, 'Eve');
  const dan = await player(browser, 'Dan');

  step('Both open the lobby through the load balancer; Eve picks a name with markup');
  await eve.page.goto(env.url);
  await dan.page.goto(env.url);
  await rename(eve, NAME);
  await connected(dan);

  step('Eve says the payload in the lobby chat');
  await say(eve, 'lobby-chat', PAYLOAD);
  check(await seeLine(dan, 'lobby-chat', PAYLOAD) === NAME, 'the sender name shows as text');
  await seeLine(eve, 'lobby-chat', PAYLOAD);

  step('Eve creates a game, Dan joins, Eve says the payload in the game chat');
  await eve.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(eve, /Waiting for an opponent/);
  await dan.page.goto(onOrigin(eve.page.url(), env.url));
  await waitStatus(dan, /turn \(X\)/);
  await say(eve, 'game-chat', PAYLOAD);
  check(await seeLine(dan, 'game-chat', PAYLOAD) === NAME, 'the sender name shows as text');
  const line = await eve.waitSent((m) => m.type === 'chat' && m.game, 'a game chat line');
  check(/^l-[0-9a-f]{24}$/.test(line.lid ?? ''), `a chat line carries a line id (${line.lid})`);
  const x = await dan.page.locator('#players .player[data-mark="X"] .player-name').textContent();
  check(x === NAME, `the player list shows the name as text (${x})`);

  // A later line proves the earlier one was fully handled (an onerror would have fired by
  // the time the image failed to load, well before a round trip through the server).
  await say(dan, 'game-chat', 'after');
  await seeLine(eve, 'game-chat', 'after');
  await seeLine(dan, 'game-chat', 'after');
  await dan.page.waitForFunction(
    (t) => document.querySelector('#announcer').textContent.includes(`${t} says: `),
    NAME,
  );

  step('Over the chat budget, the page keeps the text and waits retry_after_ms');
  await say(eve, 'game-chat', 'one');
  await seeLine(dan, 'game-chat', 'one');
  await say(eve, 'game-chat', 'two');
  await eve.page.locator('#notice', { hasText: /Slow down: try again in \d+ s/ }).waitFor();
  const send = eve.page.locator('#game-chat button[type="submit"]');
  check(await send.isDisabled(), 'Send is disabled while rate limited');
  check(await eve.page.locator('#game-chat input').inputValue() === 'two', 'the text is kept');
  await eve.page.locator('#game-chat button[type="submit"]:not([disabled])').waitFor();
  await eve.page.locator('#game-chat input').press('Enter');
  await seeLine(dan, 'game-chat', 'two');

  step('No markup became elements, no script ran');
  await noMarkup(eve);
  await noMarkup(dan);
  await shot(dan, 'chat_is_text-dan');
  await shot(eve, 'chat_is_text-eve');
  noErrors(eve, dan);
});
