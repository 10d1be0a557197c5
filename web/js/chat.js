// A chat panel (the lobby's or a game's). Lines are user data and only ever reach the page
// through textContent: the protocol says they are plain text, and a line such as
// `<img src=x onerror=...>` must show as exactly that.
//
// A line over the limit is refused before it is sent, where the eye is: the counter turns red,
// Send is disabled and screen readers hear it once. On phones the panel folds under a toggle
// that counts the lines that arrived while it was folded.

import { limits } from './protocol.js';
import { el } from './dom.js';
import { announce } from './announcer.js';

const KEEP = 200;
const NARROW = '(max-width: 44rem)';

export class ChatView {
  // onSend(text) resolves to null when sent, or to an error reply.
  constructor(section, { label, onSend }) {
    this.onSend = onSend;
    this.label = label;
    this.ids = new Set();
    this.list = el('ol', {
      class: 'chat-lines', id: `${section.id}-lines`, 'aria-label': `${label} messages`,
    });
    this.section = section;
    this.unread = 0;
    this.toggle = el('button', {
      type: 'button', class: 'chat-toggle', 'aria-controls': this.list.id, 'aria-expanded': 'false',
    });
    this.toggle.addEventListener('click', () => this.setFolded(!this.folded));
    this.narrow = window.matchMedia(NARROW);
    this.setFolded(true);
    const id = `${section.id}-input`;
    this.form = el('form', { class: 'chat-form' });
    const lab = el('label', { for: id, class: 'visually-hidden' }, `${label} message`);
    this.input = el('input', {
      id,
      name: 'text',
      // The server counts characters; maxlength counts UTF-16 units, so leave room for
      // characters outside the BMP and check the real count on submit.
      maxlength: limits.chatMaxChars * 2,
      autocomplete: 'off',
      placeholder: 'Say something…',
    });
    this.button = el('button', { type: 'submit' }, 'Send');
    this.counter = el('span', { class: 'chat-count', id: `${id}-count`, 'aria-live': 'off' });
    this.input.setAttribute('aria-describedby', this.counter.id);
    this.form.append(lab, this.input, this.button, this.counter);
    section.append(this.toggle, this.list, this.form);
    this.input.addEventListener('input', () => this.count());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.blockedUntil = 0;
    this.sending = false;
    this.over = false;
  }

  // Folded (phones only: on wider screens the toggle is hidden and the lines always show).
  setFolded(folded) {
    this.folded = folded;
    this.section.dataset.folded = String(folded);
    this.toggle.setAttribute('aria-expanded', String(!folded));
    if (!folded) this.unread = 0;
    this.renderToggle();
  }

  renderToggle() {
    const badge = this.unread > 0
      ? el('span', { class: 'badge', 'aria-hidden': 'true' }, String(this.unread)) : null;
    this.toggle.replaceChildren(el('span', {}, this.label), ...(badge ? [badge] : []));
    this.toggle.setAttribute('aria-label', this.unread > 0
      ? `${this.label}, ${this.unread} unread` : this.label);
  }

  count() {
    const max = limits.chatMaxChars;
    this.input.maxLength = max * 2;
    const n = [...this.input.value.trim()].length;
    const over = n > max;
    this.counter.textContent = n > max - 40 ? `${n}/${max}` : '';
    this.counter.classList.toggle('over', over);
    if (over) this.input.setAttribute('aria-invalid', 'true');
    else this.input.removeAttribute('aria-invalid');
    // Said once as the line goes over, not at every key press.
    if (over && !this.over) announce(`Too long: ${n} of ${max} characters. Shorten it to send.`);
    this.over = over;
    this.updateButton();
  }

  updateButton() {
    this.button.disabled = this.over || this.sending || Date.now() < this.blockedUntil;
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text || Date.now() < this.blockedUntil || this.sending) return;
    if ([...text].length > limits.chatMaxChars) {
      this.count();
      return;
    }
    this.sending = true;
    this.updateButton();
    const err = await this.onSend(text);
    this.sending = false;
    this.updateButton();
    if (!err) {
      this.input.value = '';
      this.count();
      return;
    }
    if (err.code === 'rate_limited' && err.retry_after_ms) {
      // Keep the text and refuse to send until the server's budget allows it again.
      this.blockedUntil = Date.now() + err.retry_after_ms;
      this.updateButton();
      setTimeout(() => this.updateButton(), err.retry_after_ms + 1);
    }
  }

  clear() {
    this.ids.clear();
    this.list.replaceChildren();
    this.unread = 0;
    this.renderToggle();
  }

  // A line as it arrives (not from a history): counted as unread while folded on a phone.
  receive(line) {
    if (!this.add(line)) return false;
    if (this.folded && this.narrow.matches) {
      this.unread += 1;
      this.renderToggle();
    }
    return true;
  }

  replace(lines) {
    this.clear();
    for (const l of lines) this.add(l);
  }

  // Returns whether the line is new (it may come twice: as an event and in a history).
  add(line) {
    if (this.ids.has(line.id)) return false;
    this.ids.add(line.id);
    const item = el('li', { class: 'chat-line', dataset: { id: line.id } });
    const time = new Date(line.ts);
    item.append(
      el('time', { datetime: time.toISOString(), class: 'chat-time' },
        time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
      ' ',
      el('span', { class: 'chat-from' }, line.from),
    );
    if (line.role) {
      item.append(' ', el('span', { class: `chat-role role-${line.role}` },
        line.role === 'spectator' ? 'watching' : line.role));
    }
    item.append(': ', el('span', { class: 'chat-text' }, line.text));
    // Ids grow within a chat: keep the list in order even if lines arrive out of order.
    const after = [...this.list.children].find((li) => compareIds(li.dataset.id, line.id) > 0);
    this.list.insertBefore(item, after ?? null);
    while (this.list.childElementCount > KEEP) {
      this.ids.delete(this.list.firstElementChild.dataset.id);
      this.list.firstElementChild.remove();
    }
    this.list.scrollTop = this.list.scrollHeight;
    return true;
  }
}

// Redis stream ids: "<ms>-<seq>".
function compareIds(a, b) {
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am - bm || as - bs;
}
