// What survives a reload: the session token (a secret that proves who the player is to any
// instance), the name the player chose (absent until they chose or accepted one), whether
// the "your turn" cue is on and the computer's level chosen last. Storage can be unavailable
// (private modes, quotas): the page then works for the length of the visit.

const TOKEN = 'ttt.token';
const NAME = 'ttt.name';
const CUE = 'ttt.cue';
const LEVEL = 'ttt.level';

function get(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

function set(key, value) {
  try {
    if (value == null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Not fatal: the session just does not outlive the tab.
  }
}

export const storage = {
  token: () => get(TOKEN),
  setToken: (t) => set(TOKEN, t),
  name: () => get(NAME),
  setName: (n) => set(NAME, n),
  cue: () => get(CUE) === 'on',
  setCue: (on) => set(CUE, on ? 'on' : null),
  level: () => get(LEVEL),
  setLevel: (l) => set(LEVEL, l),
};
