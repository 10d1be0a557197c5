// The "your turn" cue for a page in a background tab: a short chime and a notification. Off
// by default (sound and notifications are intrusive); the choice survives reloads. The title
// change (views.js) works without it.

import { storage } from './storage.js';

export class TurnCue {
  constructor(checkbox) {
    this.checkbox = checkbox;
    this.audio = null;
    checkbox.checked = storage.cue();
    checkbox.addEventListener('change', () => this.toggled());
  }

  get on() {
    return this.checkbox.checked;
  }

  async toggled() {
    storage.setCue(this.on);
    if (!this.on) return;
    // Both need the click that turned the cue on: browsers allow neither later without one.
    this.ensureAudio();
    if ('Notification' in window && Notification.permission === 'default') {
      try {
        await Notification.requestPermission();
      } catch {
        // Sound alone, then.
      }
    }
  }

  ensureAudio() {
    if (this.audio) return this.audio;
    const Ctx = window.AudioContext ?? window.webkitAudioContext;
    if (!Ctx) return null;
    try {
      this.audio = new Ctx();
    } catch {
      this.audio = null;
    }
    return this.audio;
  }

  // It became the player's turn. `body` says what happened.
  yourTurn(body, tag) {
    if (!this.on || !document.hidden) return;
    this.chime();
    if ('Notification' in window && Notification.permission === 'granted') {
      try {
        const n = new Notification('Your turn · Tic-tac-toe', { body, tag, renotify: true });
        n.onclick = () => {
          window.focus();
          n.close();
        };
      } catch {
        // Some platforms only allow notifications from a service worker: the chime remains.
      }
    }
  }

  chime() {
    const ctx = this.ensureAudio();
    if (!ctx) return;
    if (ctx.state === 'suspended') ctx.resume().catch(() => {});
    const t = ctx.currentTime;
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.type = 'sine';
    osc.frequency.setValueAtTime(880, t);
    osc.frequency.setValueAtTime(1320, t + 0.12);
    gain.gain.setValueAtTime(0.0001, t);
    gain.gain.exponentialRampToValueAtTime(0.2, t + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, t + 0.35);
    osc.connect(gain).connect(ctx.destination);
    osc.start(t);
    osc.stop(t + 0.4);
  }
}
