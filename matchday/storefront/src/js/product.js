// A product page: sizes (one SKU each), live availability polled while the page is visible,
// add to cart with the API's sold-out and limit errors shown as they are.

import { h, mount, money, ready } from "./dom.js";
import { addItem, describeError, product, rememberSku, request } from "./api.js";
import { mountPolls } from "./polls.js";

const POLL_MS = 4000;

export function render(root, { slug }, { navigate }) {
  const cleanups = [];
  mount(root, h("div", { class: "product skeleton", "aria-busy": "true" },
    h("div", { class: "sk-img big" }),
    h("div", {}, h("div", { class: "sk-line" }), h("div", { class: "sk-line short" }))));
  ready(false);
  let alive = true;

  product(slug).then((item) => { if (alive) show(item); }, (err) => {
    if (!alive) return;
    mount(root, h("p", { class: "status", "data-testid": "message", role: "alert" },
      err.status === 404 ? "We could not find that product." : err.message, " ",
      err.status === 404
        ? h("a", { href: "/" }, "Back to the shop")
        : h("button", { type: "button", onclick: () => navigate(location.pathname) }, "Try again")));
    ready(true);
  });

  function show(item) {
    const variants = item.variants.map((v) => ({ ...v }));
    let selected = variants.find((v) => v.in_stock) || variants[0];
    const availability = h("p", { class: "availability", "data-testid": "availability", "aria-live": "polite" });
    const message = h("p", { class: "message", "data-testid": "message", role: "alert" });
    const qty = h("input", {
      type: "number", min: 1, max: 10, value: 1, "data-testid": "qty", "aria-label": "Quantity",
    });
    const add = h("button", { type: "button", class: "primary", "data-testid": "add-to-cart" }, "Add to cart");
    const sizes = h("div", { class: "sizes", role: "group", "aria-label": "Size" });
    const price = h("p", { class: "price" });

    function paint() {
      sizes.replaceChildren(...variants.map((v) => h("button", {
        type: "button", class: v === selected ? "size selected" : "size",
        "data-testid": "size-option", "data-sku": v.sku, disabled: !v.in_stock,
        "aria-pressed": v === selected ? "true" : "false",
        onclick: () => { selected = v; message.textContent = ""; paint(); },
      }, v.size || v.colour || v.sku)));
      const soldOut = !selected || !selected.in_stock;
      price.textContent = money(selected ? selected.price_cents : item.price_cents, item.currency);
      availability.textContent = soldOut ? "Sold out" : `${selected.available} left`;
      availability.classList.toggle("out", soldOut);
      add.disabled = soldOut;
    }

    add.addEventListener("click", async () => {
      const units = Math.max(1, Math.min(100, Number(qty.value) || 1));
      add.disabled = true;
      message.className = "message";
      message.textContent = "Reserving…";
      try {
        rememberSku(selected.sku, {
          name: item.name, slug: item.slug, size: selected.size, image_url: item.image_url,
          price_cents: selected.price_cents, currency: item.currency,
        });
        await addItem(selected.sku, units);
        message.className = "message ok";
        mount(message, `Added ${units} × ${selected.size || item.name} to your cart. `,
          h("a", { href: "/cart" }, "View cart"));
        refresh();
      } catch (err) {
        if (err.code === "pass_required") return queueFor(selected.sku);
        message.className = "message error";
        message.textContent = describeError(err);
        refresh();
      } finally {
        paint();
      }
    });

    // A drop's size: wait in its queue, which brings the fan back here with a pass.
    async function queueFor(sku) {
      try {
        const found = await request(`/api/shop/drops?sku=${encodeURIComponent(sku)}`);
        navigate(`/queue/${found.drop_id}?next=${encodeURIComponent(location.pathname)}`);
      } catch (err) {
        message.className = "message error";
        message.textContent = describeError(err);
      }
    }

    async function refresh() {
      if (document.visibilityState !== "visible") return;
      const query = variants.map((v) => `sku=${encodeURIComponent(v.sku)}`).join("&");
      try {
        const units = await request(`/api/catalog/availability?${query}`, { retries: 1 });
        for (const v of variants) {
          v.available = units[v.sku] || 0;
          v.in_stock = v.available > 0;
        }
        if (alive) paint();
      } catch {
        // Keep the last figures; the next tick tries again.
      }
    }

    document.title = `${item.name} · matchday`;
    mount(root, h("article", { class: "product" },
      h("img", { src: item.image_url, alt: item.name, width: 480, height: 480, fetchpriority: "high" }),
      h("div", { class: "details" },
        h("h1", { "data-testid": "product-title" }, item.name),
        price,
        h("p", { class: "description" }, item.description),
        sizes, availability,
        h("div", { class: "buy" }, h("label", {}, "Qty ", qty), add),
        message,
        h("div", { class: "polls" }))));
    paint();
    ready(true);
    refresh();
    const timer = setInterval(refresh, POLL_MS);
    document.addEventListener("visibilitychange", refresh);
    cleanups.push(() => clearInterval(timer));
    cleanups.push(() => document.removeEventListener("visibilitychange", refresh));
    cleanups.push(mountPolls(root.querySelector(".polls"), `product:${slug}`));
  }

  return () => {
    alive = false;
    for (const fn of cleanups) fn();
  };
}
