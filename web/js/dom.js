// Element creation that can only ever put user data into the page as text.

export function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v == null) continue;
    if (k === 'class') node.className = v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  if (text != null) node.textContent = String(text);
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function show(node, visible) {
  node.hidden = !visible;
}
