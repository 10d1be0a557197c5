// The connection indicator in the header: always visible, with the countdown to the next
// reconnect attempt. Only changes of state are announced; the ticking countdown is not.

import { $ } from './dom.js';
import { announce } from './announcer.js';

const SPOKEN = {
  connected: 'Connected.',
  reconnecting: 'Connection lost. Reconnecting.',
  offline: 'You are offline.',
};

export class StatusView {
  constructor(onRetry) {
    this.box = $('conn');
    this.text = $('conn-text');
    // Phones show a short word instead (style.css): the header keeps one row of fixed height.
    this.short = $('conn-short');
    this.retry = $('conn-retry');
    this.retry.addEventListener('click', onRetry);
    this.tick = null;
    this.last = 'connecting';
  }

  update({ state, attempt, nextAttemptAt }) {
    clearInterval(this.tick);
    this.tick = null;
    this.box.dataset.state = state;
    if (state !== this.last && SPOKEN[state]) announce(SPOKEN[state]);
    this.last = state;
    this.retry.hidden = state === 'connected' || state === 'connecting';
    this.short.textContent = { connected: 'Connected', connecting: 'Connecting…' }[state] ?? 'Offline';
    if (state === 'connected') {
      this.text.textContent = 'Connected';
    } else if (state === 'connecting') {
      this.text.textContent = 'Connecting…';
    } else if (state === 'offline') {
      this.text.textContent = 'Offline: waiting for the network';
    } else if (nextAttemptAt) {
      const render = () => {
        const left = Math.max(0, nextAttemptAt - Date.now());
        this.text.textContent = left > 0
          ? `Reconnecting in ${(left / 1000).toFixed(1)} s (attempt ${attempt})`
          : `Reconnecting… (attempt ${attempt})`;
        if (left === 0) clearInterval(this.tick);
      };
      render();
      this.tick = setInterval(render, 100);
    } else {
      this.text.textContent = `Reconnecting… (attempt ${attempt})`;
    }
  }
}
