// The notice under the header: a refusal or a problem the player should see, shown for a few
// seconds and read out. One notice at a time: a new one replaces the last and its timer.

import { $ } from './dom.js';
import { announce } from './announcer.js';

const NOTICE_MS = 6000;

let timer = null;

export function notify(text) {
  const n = $('notice');
  n.textContent = text;
  n.hidden = false;
  announce(text);
  clearTimeout(timer);
  timer = setTimeout(() => {
    n.hidden = true;
  }, NOTICE_MS);
}
