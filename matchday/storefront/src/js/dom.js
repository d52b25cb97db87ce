// Building DOM without innerHTML: every product text is set as text, so nothing a merchandiser
// types can become markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function mount(root, ...children) {
  root.replaceChildren();
  append(root, children);
}

export function money(cents, currency) {
  return new Intl.NumberFormat(undefined, { style: "currency", currency: currency || "EUR" })
    .format(cents / 100);
}

// Tests wait on <body data-ready="1">: set once the current page shows its data.
export function ready(flag) {
  document.body.dataset.ready = flag ? "1" : "0";
}

export function mmss(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

export function skeletonCards(n) {
  return Array.from({ length: n }, () =>
    h("li", { class: "card skeleton", "aria-hidden": "true" },
      h("div", { class: "sk-img" }), h("div", { class: "sk-line" }),
      h("div", { class: "sk-line short" })));
}
