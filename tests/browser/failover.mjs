// The instance behind a player dies (kill -9) while a move of hers is in flight: the page
// shows "reconnecting", comes back through nginx on another instance, resumes the game,
// re-sends the unacknowledged move with the same mid, and the game is played to its end.

import {
  spec, player, env, step, check, shot, connected, instanceOf, seeMark, click, waitStatus,
  noErrors, onOrigin, WAIT_MS,
} from './lib.mjs';

await spec('failover', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');

  step('Ann comes in through the load balancer');
  await ann.page.goto(env.url);
  const annInstance = await instanceOf(ann);
  const annPid = env.pids[annInstance];
  check(annPid > 0, `Ann's instance ${annInstance} has a known pid`);

  step(`Ann (on ${annInstance}) creates a game; Bob joins pinned to another instance`);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  const bobIndex = Object.keys(env.pids).sort().findIndex((name) => name !== annInstance);
  await bob.page.goto(onOrigin(ann.page.url(), env.pinned[bobIndex]));
  const bobInstance = await instanceOf(bob);
  check(bobInstance !== annInstance, `Bob is on another instance (${bobInstance})`);
  await waitStatus(ann, /^Your turn \(X\)/);

  await click(ann, 0);
  await seeMark(bob, 0, 'X');
  await click(bob, 4);
  await seeMark(ann, 4, 'O');

  // Records every state the connection indicator takes, however briefly.
  await ann.page.evaluate(() => {
    window.connStates = [];
    const box = document.querySelector('#conn');
    const text = document.querySelector('#conn-text');
    new MutationObserver(() => {
      window.connStates.push(`${box.dataset.state}: ${text.textContent}`);
    }).observe(box, { attributes: true, childList: true, subtree: true, characterData: true });
  });

  step(`${annInstance} freezes (SIGSTOP) with Ann's move in flight, then is killed (SIGKILL)`);
  process.kill(annPid, 'SIGSTOP');
  await click(ann, 1);
  await ann.page.waitForFunction(
    () => document.querySelector('#board .cell[data-cell="1"]').classList.contains('pending'),
  );
  const firstTry = await ann.waitSent((m) => m.type === 'move' && m.cell === 1, 'the move');
  process.kill(annPid, 'SIGKILL');

  step('Ann\'s page shows reconnecting, then is connected again elsewhere');
  await ann.page.waitForFunction(
    () => window.connStates.some((s) => s.startsWith('reconnecting: Reconnecting')),
    null,
    { timeout: WAIT_MS },
  );
  await shot(ann, 'failover-ann-after-kill');
  await connected(ann);
  const newInstance = await instanceOf(ann);
  check(newInstance !== annInstance, `Ann resumed on a live instance (${newInstance})`);

  step('The move is re-sent with the same mid and applied once');
  await seeMark(ann, 1, 'X');
  await seeMark(bob, 1, 'X');
  const tries = ann.sent.filter((m) => m.type === 'move' && m.cell === 1);
  check(tries.length >= 2, `the move was sent again after reconnecting (${tries.length} sends)`);
  check(tries.every((m) => m.mid === firstTry.mid), `every send used mid ${firstTry.mid}`);
  const hello = ann.sent.filter((m) => m.type === 'hello').at(-1);
  check(hello.token && hello.resume?.some((r) => r.game && r.version >= 3),
    `the hello resumed with the token and the game's version: ${JSON.stringify(hello.resume)}`);

  step('The game goes on to its end');
  await click(bob, 8);
  await seeMark(ann, 8, 'O');
  await click(ann, 2);
  await waitStatus(ann, /^You won!/);
  await waitStatus(bob, /won\./);
  await ann.page.locator('#players .player[data-mark="X"][data-online="true"]').waitFor();
  await bob.page.locator('#players .player[data-mark="X"][data-online="true"]').waitFor();
  const states = await ann.page.evaluate(() => window.connStates);
  check(states.some((s) => /^reconnecting: Reconnecting in \d/.test(s)),
    `after a crash the page counts down to its next attempt: ${states.join(' | ')}`);
  await shot(ann, 'failover-ann-finished');
  await shot(bob, 'failover-bob-finished');

  step(`${newInstance} shuts down gracefully (SIGTERM): close 1012, Ann reconnects at once`);
  await ann.page.evaluate(() => { window.connStates = []; });
  process.kill(env.pids[newInstance], 'SIGTERM');
  await ann.page.waitForFunction(() => window.connStates.some((s) => s.startsWith('reconnecting')));
  await connected(ann);
  const third = await instanceOf(ann);
  check(third !== newInstance && third !== annInstance, `Ann is on the last instance (${third})`);
  const after1012 = await ann.page.evaluate(() => window.connStates);
  check(!after1012.some((s) => s.includes('Reconnecting in')),
    `no backoff after 1012: ${after1012.join(' | ')}`);
  await waitStatus(ann, /^You won!/);
  noErrors(ann, bob);
});

