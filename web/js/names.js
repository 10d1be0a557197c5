// The player's name: the rule every action that shows it to others follows, the rename (of
// the session and every seat it holds), the name field at the top and the dialog that asks.

import { Disconnected } from './connection.js';
import { notify } from './notice.js';
import { announce } from './announcer.js';
import { storage } from './storage.js';
import { $ } from './dom.js';
import { NAME_MAX_CHARS, refusedText } from './protocol.js';

const WHY = {
  link: 'You are joining a game from a link.',
  'link-unsure': 'You are opening a game from a link.',
  create: 'Your opponent will see it.',
  join: 'Your opponent will see it.',
  chat: 'It shows next to what you say.',
};

// A first check, so a name that cannot pass is never sent: the server cleans it again
// (docs/protocol.md, Rename) and has the last word.
function cleanName(text) {
  const name = text.trim().replace(/\s+/g, ' ');
  return name && [...name].length <= NAME_MAX_CHARS ? name : null;
}

// `recover(err, game)`: what a refused rename says about the page's view (recovery.js).
export function createNames({ page, conn, recover }) {
  function showName(name, instance) {
    const input = $('name-input');
    // Never overwrite what the player is typing.
    if (document.activeElement !== input || input.value.trim() === (page.name ?? '')) input.value = name;
    page.name = name;
    const info = $('server-info');
    if (instance) info.dataset.instance = instance;
    info.textContent = `Signed in as ${name} · server ${info.dataset.instance ?? ''}`;
  }

  let renaming = null;

  // Renames the session and every seat it holds (the server tells the games). Offline, the
  // name waits for the next hello. Resolves to whether the name is now in effect. A name the
  // server refuses is not kept: the field goes back to the name everyone sees, and the notice
  // says what was refused and why.
  async function setName(name) {
    const offline = () => {
      storage.setName(name);
      page.renameOnWelcome = true;
      return false;
    };
    if (!conn.connected) return offline();
    if (name === page.name) {
      storage.setName(name);
      return true;
    }
    let reply;
    try {
      // Two actions in quick succession (a double click on a cell) ask for one rename.
      if (renaming?.name !== name) {
        const pending = { name, reply: conn.request({ type: 'rename', name }) };
        renaming = pending;
        pending.reply.finally(() => {
          if (renaming === pending) renaming = null;
        }).catch(() => {});
      }
      reply = await renaming.reply;
    } catch (e) {
      if (!(e instanceof Disconnected)) throw e;
      return offline();
    }
    if (reply.type === 'error') {
      notify(refusedText('Rename', reply));
      if (page.name != null) $('name-input').value = page.name;
      recover(reply, null);
      return false;
    }
    const now = reply.name ?? name;
    storage.setName(now);
    showName(now);
    return true;
  }

  let asking = null;

  // The rule for names, the same for every action that shows the player's name to others (new
  // game, quick match, join, a move, a rematch, a chat line): a name typed at the top but not
  // saved is saved first; a player who never chose a name is asked once (unless `ask` is false:
  // a move never opens a dialog), with the name they have as the default to accept.
  async function withName(why, action, { ask: mayAsk = true } = {}) {
    const typed = cleanName($('name-input').value);
    if (typed && page.name && typed !== page.name) {
      await setName(typed);
    } else if (mayAsk && !storage.name()) {
      asking ??= askName(why).finally(() => {
        asking = null;
      });
      const name = await asking;
      if (name) await setName(name);
    }
    return action();
  }

  function askName(why) {
    const dialog = $('name-dialog');
    const input = $('name-dialog-input');
    $('name-dialog-why').textContent = WHY[why] ?? '';
    // Only a game known to have a free seat offers to join it.
    $('name-dialog-ok').textContent = why === 'link' ? 'Join the game' : 'Continue';
    input.value = page.name ?? storage.name() ?? '';
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener('close', done);
        // Escape closes it too: that accepts the default, as the dialog says.
        resolve(cleanName(input.value) ?? page.name);
      };
      dialog.addEventListener('close', done);
      dialog.showModal();
      input.select();
    });
  }

  $('name-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const name = cleanName($('name-input').value);
    if (!name) return;
    if (await setName(name)) announce(`Name saved: ${name}.`);
    else if (!conn.connected) notify('Name saved: it applies when the connection is back.');
  });

  const stored = storage.name();
  if (stored) $('name-input').value = stored;
  $('name-dialog-input').maxLength = NAME_MAX_CHARS;

  return { showName, withName };
}
