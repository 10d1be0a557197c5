// The page's hello meets `unavailable` (Redis out of reach, a failover under way): the page
// comes back with its usual reconnect backoff, under a second the first time, not with the long
// wait a refused hello earns. The refusal is made by answering the page's first hello in its
// WebSocket route (Playwright); every other frame passes between the page and the server.

import { spec, player, env, step, check, connected, noErrors } from './lib.mjs';

await spec('hello_retry', async (browser) => {
  const ann = await player(browser, 'Ann');
  let hellos = 0;
  await ann.page.routeWebSocket(/\/ws/, (ws) => {
    const server = ws.connectToServer();
    ws.onMessage((m) => {
      const msg = JSON.parse(m);
      if (msg.type === 'hello' && ++hellos === 1) {
        ws.send(JSON.stringify({
          type: 'error', req: msg.req, code: 'unavailable',
          message: 'the game service did not answer: retry',
        }));
        return;
      }
      server.send(m);
    });
    server.onMessage((m) => ws.send(m));
  });
  // Every text the connection indicator shows, from the start.
  await ann.context.addInitScript(() => {
    window.connTexts = [];
    document.addEventListener('DOMContentLoaded', () => {
      const text = document.querySelector('#conn-text');
      new MutationObserver(() => window.connTexts.push(text.textContent))
        .observe(text, { childList: true, subtree: true, characterData: true });
    });
  });

  step('Ann opens the page; her first hello is answered `unavailable`');
  await ann.page.goto(env.url);
  await connected(ann);
  const texts = await ann.page.evaluate(() => window.connTexts);
  step(`the indicator showed: ${texts.join(' | ')}`);
  check(hellos === 2, `one refused hello, then one that went through (${hellos} sent)`);
  const first = texts.map((t) => /Reconnecting in ([\d.]+) s/.exec(t)).find(Boolean);
  check(first, `a reconnect countdown was shown: ${texts.join(' | ')}`);
  check(Number(first[1]) <= 1, `the first retry waits under a second, not 15 s: ${first[0]}`);
  noErrors(ann);
});
