// The cart: each line is a hold on stock with its own expiry, counted down here from the
// server's expires_in_s (so a wrong clock on this device does not matter).

import { h, mount, money, mmss, ready } from "./dom.js";
import { cart, describeError, setQuantity, skuInfo } from "./api.js";

export function render(root) {
  let timer = null;
  let alive = true;
  const message = h("p", { class: "message", "data-testid": "message", role: "alert" });
  mount(root, h("h1", {}, "Your cart"), h("ul", { class: "lines" }, h("li", { class: "line skeleton" },
    h("div", { class: "sk-line" }))));
  ready(false);

  async function load() {
    try {
      const data = await cart();
      if (alive) show(data);
    } catch (err) {
      if (!alive) return;
      mount(root, h("h1", {}, "Your cart"), h("p", { class: "status", "data-testid": "message" },
        err.message, " ", h("button", { type: "button", onclick: load }, "Try again")));
      ready(true);
    }
  }

  function show(data) {
    clearInterval(timer);
    const lines = data ? data.lines.filter((l) => l.status === "held" || l.status === "expired") : [];
    if (!lines.length) {
      mount(root, h("h1", {}, "Your cart"),
        h("p", { class: "empty", "data-testid": "cart-empty" }, "Your cart is empty. ",
          h("a", { href: "/" }, "Browse the shop")));
      ready(true);
      return;
    }
    const started = performance.now();
    const clocks = [];
    let total = 0;
    let currency = "EUR";
    const items = lines.map((line) => {
      const info = skuInfo(line.sku) || {};
      const clock = h("span", { class: "countdown", "data-testid": "countdown" });
      clocks.push({ clock, line });
      if (line.status === "held" && info.price_cents !== undefined) {
        total += info.price_cents * line.qty;
        currency = info.currency || currency;
      }
      const qty = h("select", { "data-testid": "line-qty", "aria-label": "Quantity",
        disabled: line.status !== "held" },
        Array.from({ length: Math.max(10, line.qty) }, (_, i) =>
          h("option", { value: i + 1, selected: i + 1 === line.qty }, i + 1)));
      qty.addEventListener("change", () => change(line.sku, Number(qty.value)));
      return h("li", { class: "line", "data-testid": "cart-line", "data-sku": line.sku },
        info.image_url ? h("img", { src: info.image_url, alt: "", width: 64, height: 64, loading: "lazy" }) : null,
        h("span", { class: "name" },
          info.slug ? h("a", { href: `/p/${info.slug}` }, info.name) : line.sku,
          info.size ? ` · ${info.size}` : ""),
        qty,
        h("span", { class: "hold" }, "held for ", clock),
        h("button", { type: "button", class: "link", "data-testid": "remove-line",
          onclick: () => change(line.sku, 0) }, "Remove"));
    });
    const held = lines.some((l) => l.status === "held");
    mount(root, h("h1", {}, "Your cart"), h("ul", { class: "lines" }, items),
      h("p", { class: "total" }, "Total ", total ? money(total, currency) : "—"),
      message,
      h("a", { class: held ? "button primary" : "button primary disabled", href: "/checkout",
        "data-testid": "checkout", "aria-disabled": held ? "false" : "true" }, "Checkout"));

    function tick() {
      const elapsed = (performance.now() - started) / 1000;
      let lapsed = false;
      for (const { clock, line } of clocks) {
        const left = line.status === "held" ? line.expires_in_s - elapsed : 0;
        const text = left > 0 ? mmss(left) : "expired";
        if (text === "expired" && clock.textContent !== "expired" && line.status === "held") lapsed = true;
        clock.textContent = text;
        clock.classList.toggle("expired", left <= 0);
        clock.classList.toggle("soon", left > 0 && left < 60);
      }
      if (lapsed) setTimeout(load, 1500); // the server releases lapsed holds: show its view
    }
    tick();
    timer = setInterval(tick, 1000);
    ready(true);
  }

  async function change(sku, qty) {
    message.textContent = "";
    try {
      show(await setQuantity(sku, qty));
    } catch (err) {
      message.textContent = describeError(err);
    }
  }

  load();
  return () => {
    alive = false;
    clearInterval(timer);
  };
}
