// The storefront's entry: a History API router over five pages, the header's cart count, the
// offline and busy banners, and the service worker.

import { h, mount, ready } from "./dom.js";
import { cart, cartId, onStatus } from "./api.js";
import * as catalog from "./catalog.js";
import * as product from "./product.js";
import * as cartPage from "./cart.js";
import * as checkout from "./checkout.js";
import * as order from "./order.js";
import * as queue from "./queue.js";

const ROUTES = [
  [/^\/$/, catalog, () => ({})],
  [/^\/p\/([a-z0-9][a-z0-9-]*)$/, product, (m) => ({ slug: m[1] })],
  [/^\/cart$/, cartPage, () => ({})],
  [/^\/checkout$/, checkout, () => ({})],
  [/^\/orders\/(o_[a-z2-7]+)$/, order, (m) => ({ orderId: m[1] })],
  [/^\/queue\/(d_[a-z2-7]{16})$/, queue, (m) => ({ dropId: m[1] })],
];

const main = document.getElementById("main");
const offline = document.querySelector("[data-testid=offline]");
const busy = document.querySelector("[data-testid=busy]");
const count = document.querySelector("[data-testid=cart-count]");
const KEEP = /\/(api\/catalog|static\/img)\//; // what the service worker may keep offline
let leave = () => {};

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", path);
  else if (path !== location.pathname + location.search) history.pushState({}, "", path);
  route();
}

function route() {
  leave();
  leave = () => {};
  ready(false);
  window.scrollTo(0, 0);
  const path = location.pathname;
  for (const [pattern, view, params] of ROUTES) {
    const match = pattern.exec(path);
    if (match) {
      document.title = "matchday shop";
      leave = view.render(main, params(match), { navigate }) || (() => {});
      return;
    }
  }
  mount(main, h("h1", {}, "Page not found"), h("a", { href: "/" }, "Back to the shop"));
  ready(true);
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey || link.target) return;
  const url = new URL(link.href);
  if (url.origin !== location.origin) return;
  event.preventDefault();
  if (link.getAttribute("aria-disabled") === "true") return;
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", route);

// -- banners ------------------------------------------------------------------------------------

function setOffline(on) {
  offline.hidden = !on;
}

let busyTimer = null;
onStatus((status) => {
  if (status.kind === "offline") setOffline(true);
  if (status.kind === "ok") {
    if (navigator.onLine) setOffline(false);
    busy.hidden = true;
  }
  if (status.kind === "retrying") {
    busy.hidden = false;
    busy.textContent = `The shop is very busy: trying again in ${Math.ceil(status.delay / 1000)} s…`;
    clearTimeout(busyTimer);
    busyTimer = setTimeout(() => { busy.hidden = true; }, status.delay + 4000);
  }
});
window.addEventListener("offline", () => setOffline(true));
window.addEventListener("online", () => setOffline(false));
setOffline(!navigator.onLine);

async function updateCount() {
  if (!cartId()) {
    count.textContent = "";
    return;
  }
  try {
    const data = await cart();
    count.textContent = data && data.units ? String(data.units) : "";
  } catch {
    // The count is a convenience; the cart page says what is wrong.
  }
}
window.addEventListener("cart-changed", updateCount);

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.addEventListener("message", (event) => {
    if (event.data && event.data.type === "offline") setOffline(true);
  });
  window.addEventListener("load", () => {
    navigator.serviceWorker.register("/sw.js").catch(() => {});
    // The worker saw none of this page's requests if it was not in control yet: tell it.
    navigator.serviceWorker.ready.then((registration) => {
      const urls = performance.getEntriesByType("resource").map((entry) => entry.name)
        .filter((url) => KEEP.test(url));
      if (registration.active) registration.active.postMessage({ type: "keep", urls });
    });
  });
}

route();
updateCount();
