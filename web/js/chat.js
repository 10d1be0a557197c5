// A chat panel (the lobby's or a game's). Lines are user data and only ever reach the page
// through textContent: the protocol says they are plain text, and a line such as
// `<img src=x onerror=...>` must show as exactly that.

import { limits } from './protocol.js';
import { el } from './dom.js';

const KEEP = 200;

export class ChatView {
  // onSend(text) resolves to null when sent, or to an error reply.
  constructor(section, { label, onSend }) {
    this.onSend = onSend;
    this.ids = new Set();
    this.list = el('ol', { class: 'chat-lines', 'aria-label': `${label} messages` });
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
    this.counter = el('span', { class: 'chat-count', 'aria-live': 'off' });
    this.form.append(lab, this.input, this.button, this.counter);
    section.append(this.list, this.form);
    this.input.addEventListener('input', () => this.count());
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.submit();
    });
    this.blockedUntil = 0;
  }

  count() {
    const max = limits.chatMaxChars;
    this.input.maxLength = max * 2;
    const n = [...this.input.value].length;
    this.counter.textContent = n > max - 40 ? `${n}/${max}` : '';
  }

  async submit() {
    const text = this.input.value.trim();
    if (!text || Date.now() < this.blockedUntil) return;
    if ([...text].length > limits.chatMaxChars) {
      this.count();
      return;
    }
    this.button.disabled = true;
    const err = await this.onSend(text);
    this.button.disabled = false;
    if (!err) {
      this.input.value = '';
      this.count();
      return;
    }
    if (err.code === 'rate_limited' && err.retry_after_ms) {
      // Keep the text and refuse to send until the server's budget allows it again.
      this.blockedUntil = Date.now() + err.retry_after_ms;
      this.button.disabled = true;
      setTimeout(() => {
        this.button.disabled = false;
      }, err.retry_after_ms);
    }
  }

  clear() {
    this.ids.clear();
    this.list.replaceChildren();
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
