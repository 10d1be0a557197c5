// A game's link (`?game=<id>`): its address, copying it, and arriving by one, where a newcomer
// is asked for a name only when the lobby list says there is a seat to take.

import { storage } from './storage.js';
import { announce } from './announcer.js';
import { $ } from './dom.js';

const LOBBY_WAIT_MS = 5000;

export function gameLink(id) {
  return `${location.origin}${location.pathname}?game=${encodeURIComponent(id)}`;
}

// `lobbyListed(msg)` is to be called with every lobby list (events.js): a newcomer's arrival
// waits for the first one.
export function createLink({ page, gameView, withName, join }) {
  // Resolved by the next lobby list (null after `ms`).
  const lobbyWaiters = [];
  function nextLobby(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = lobbyWaiters.indexOf(done);
        if (i >= 0) lobbyWaiters.splice(i, 1);
        resolve(null);
      }, ms);
      function done(msg) {
        clearTimeout(timer);
        resolve(msg);
      }
      lobbyWaiters.push(done);
    });
  }

  function lobbyListed(msg) {
    for (const waiter of lobbyWaiters.splice(0)) waiter(msg);
  }

  // A seat takes the player's name, so a newcomer is asked for one before joining, with a
  // default to accept. Whether there is a seat to take, the lobby list says without joining
  // (and so without showing up as a spectator): an open game offers "Join the game"; a game
  // being played has no seat for a newcomer, who just watches and is not asked; a game in
  // neither list (finished, or not listed) gets a neutral "Continue".
  async function arriveByLink(id) {
    const go = () => (page.wanted === id && !page.current ? join(id, false) : null);
    if (storage.name()) {
      withName('link', go);
      return;
    }
    // The welcome that called this then asks for the lobby (the page starts on it).
    const list = await nextLobby(LOBBY_WAIT_MS);
    if (page.wanted !== id || page.current) return;
    const listed = (l) => (list?.[l] ?? []).some((g) => g.game === id);
    if (listed('live')) go();
    else withName(listed('open') ? 'link' : 'link-unsure', go);
  }

  async function copyLink() {
    const input = $('game-link');
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      // The async clipboard needs a secure context; plain http falls back to the selection.
      input.select();
      document.execCommand('copy');
    }
    // Confirmed where the player looks, on the button; the live region tells screen readers.
    gameView.copied();
    announce('Link copied.');
  }

  return { arriveByLink, lobbyListed, copyLink };
}
