// The player's profile as the server keeps it: reading, creating, a new recovery code,
// deleting, and recovering one with its code, which swaps this page's session for the
// profile's (a new token, then a reconnect). What the page knows of it (`page.profile`: the
// rating, and whether it is provisional) comes with every welcome and every profile reply.

import { Disconnected } from './connection.js';
import { announce } from './announcer.js';
import { notify } from './notice.js';
import { errorText } from './protocol.js';
import { storage } from './storage.js';

// `ask(msg)`: a request whose refusal is shown (actions.js); `forget()` drops the games and
// the match queue of the session being left.
export function createAccount({ page, conn, ask, lobby, view, showPanel, forget }) {
  function known(profile) {
    page.profile = profile ? { rating: profile.rating, provisional: Boolean(profile.provisional) } : null;
    lobby.setProfile(page.profile);
  }

  async function open() {
    showPanel('profile');
    await refresh();
  }

  async function refresh() {
    view.loading(true);
    let reply;
    try {
      reply = await conn.request({ type: 'profile' });
    } catch (e) {
      if (!(e instanceof Disconnected)) throw e;
      // The welcome after the reconnect asks again.
      return;
    }
    view.loading(false);
    if (reply.type === 'profile') {
      known(reply.profile);
      view.render(reply.profile);
    } else if (reply.code === 'no_profile') {
      known(null);
      view.render(null);
    } else {
      notify(errorText(reply));
    }
  }

  // `profile_create` and `profile_code` answer alike: the profile and its code, shown once.
  async function withCode(type, said) {
    const reply = await ask({ type });
    if (reply?.type !== 'profile') return;
    known(reply.profile);
    view.render(reply.profile);
    announce(said);
    view.showCode(reply.code);
  }

  async function remove() {
    const reply = await ask({ type: 'profile_delete' });
    if (reply?.type === 'ack' || reply?.code === 'no_profile') {
      known(null);
      view.render(null);
      notify('Your profile is deleted.');
    }
  }

  async function recover(code) {
    view.recovering(true);
    const reply = await ask({ type: 'recover', code });
    view.recovering(false);
    if (reply?.type !== 'recovered') return;
    view.recovered();
    // The profile's session replaces this one. Its name goes with it: a hello carrying this
    // device's old name would rename the recovered profile.
    storage.setToken(reply.token);
    storage.setName(reply.name);
    page.renameOnWelcome = false;
    forget();
    notify(`Welcome back, ${reply.name}: your profile is on this device now.`);
    conn.reconnectNow();
  }

  // Every welcome says whether the session's player has a profile (after a recovery, the
  // profile's session): the panel on screen shows it as it is now.
  function welcomed(msg) {
    known(msg.profile ?? null);
    if (page.view === 'profile') refresh();
  }

  // Back in the lobby after a game: the rating it shows may have moved.
  async function lobbyShown() {
    if (!page.profile || !conn.connected) return;
    const reply = await conn.request({ type: 'profile' }).catch(() => null);
    if (reply?.type === 'profile') known(reply.profile);
    else if (reply?.code === 'no_profile') known(null);
  }

  return {
    open,
    lobbyShown,
    refresh,
    create: () => withCode('profile_create', 'Profile created.'),
    newCode: () => withCode('profile_code', 'New recovery code made: the old one no longer works.'),
    remove,
    recover,
    welcomed,
  };
}
