// The "your turn" cue: off by default; once turned on, a move that makes it the player's turn
// while the tab is in the background plays a chime and shows a notification; in the
// foreground it does neither (the page itself shows the turn).
//
// Notifications and audio are recorded by stubs installed before the page loads, and the tab
// is sent to the background by overriding the Page Visibility API, so the spec sees exactly
// what the page asked for.

import {
  spec, player, env, step, check, connected, waitStatus, click, seeMark, noErrors, onOrigin,
} from './lib.mjs';

function stubs() {
  window.cueLog = { notes: [], chimes: 0 };
  class FakeNotification {
    static permission = 'granted';
    static requestPermission() { return Promise.resolve('granted'); }
    constructor(title, opts) { window.cueLog.notes.push({ title, body: opts?.body ?? '' }); }
    close() {}
  }
  window.Notification = FakeNotification;
  const Real = window.AudioContext;
  window.AudioContext = class extends Real {
    createOscillator() {
      const osc = super.createOscillator();
      const start = osc.start.bind(osc);
      osc.start = (...a) => { window.cueLog.chimes += 1; return start(...a); };
      return osc;
    }
  };
  let hidden = false;
  Object.defineProperty(document, 'hidden', { get: () => hidden, configurable: true });
  Object.defineProperty(document, 'visibilityState', {
    get: () => (hidden ? 'hidden' : 'visible'), configurable: true,
  });
  window.setHidden = (h) => {
    hidden = h;
    document.dispatchEvent(new Event('visibilitychange'));
  };
}

const log = (p) => p.page.evaluate(() => window.cueLog);

await spec('turn_cue', async (browser) => {
  const ann = await player(browser, 'Ann');
  const bob = await player(browser, 'Bob');
  await ann.context.addInitScript(stubs);

  step('Ann and Bob start a game; the cue is off by default');
  await ann.page.goto(env.pinned[0]);
  await connected(ann);
  await ann.page.getByRole('button', { name: 'New game' }).click();
  await waitStatus(ann, /Waiting for an opponent/);
  const cue = ann.page.getByLabel(/Sound and notification when it is my turn/);
  check(!(await cue.isChecked()), 'the cue is off by default');
  await bob.page.goto(onOrigin(ann.page.url(), env.pinned[1]));
  await waitStatus(ann, /^Your turn \(X\)/);
  await click(ann, 4);

  step('Off: Ann\'s tab in the background gets no cue when her turn comes');
  await ann.page.evaluate(() => window.setHidden(true));
  await click(bob, 0);
  await seeMark(ann, 0, 'O');
  await waitStatus(ann, /^Your turn \(X\)/);
  let l = await log(ann);
  check(l.notes.length === 0 && l.chimes === 0, `no cue while off (${JSON.stringify(l)})`);
  await ann.page.waitForFunction(() => document.title.startsWith('Your turn'));

  step('On: the next turn in the background chimes and notifies');
  await ann.page.evaluate(() => window.setHidden(false));
  await cue.check();
  await click(ann, 8);
  await ann.page.evaluate(() => window.setHidden(true));
  await click(bob, 2);
  await ann.page.waitForFunction(() => window.cueLog.notes.length === 1);
  l = await log(ann);
  check(l.notes[0].title === 'Your turn · Tic-tac-toe', `the notification says so: ${l.notes[0].title}`);
  check(l.notes[0].body.includes('O played top right'), `it tells the move: ${l.notes[0].body}`);
  check(l.chimes === 1, `one chime (${l.chimes})`);

  step('In the foreground: no cue; and the choice survives a reload');
  await ann.page.evaluate(() => window.setHidden(false));
  await click(ann, 6);
  await click(bob, 3);
  await seeMark(ann, 3, 'O');
  await waitStatus(ann, /^Your turn \(X\)/);
  l = await log(ann);
  check(l.notes.length === 1 && l.chimes === 1, `no cue in the foreground (${JSON.stringify(l)})`);
  await ann.page.reload();
  await waitStatus(ann, /^Your turn \(X\)/);
  check(await ann.page.getByLabel(/Sound and notification when it is my turn/).isChecked(),
    'the cue is still on after a reload');
  noErrors(ann, bob);
});
