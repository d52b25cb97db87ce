// Checkout: pick a test payment method, optionally a poll's offer code, and place the order.
// One Idempotency-Key per click, kept across the automatic retries, so a retry after a 503 or
// a dropped connection resumes the same order and can never charge twice.

import { h, mount, money, ready } from "./dom.js";
import { cart, cartId, forgetCart, newKey, passHeader, request, skuInfo } from "./api.js";
import { mountPolls, OFFER_KEY } from "./polls.js";

const METHODS = [
  ["pm_card_visa", "Visa ending 4242 (approved)"],
  ["pm_card_chargeDeclined", "Card that is declined"],
  ["pm_card_authenticationRequired", "Card that asks for 3-D Secure"],
];

export function render(root, _params, { navigate }) {
  let alive = true;
  let stopPolls = () => {};
  let quoteTimer = 0;
  let takeOffer = null;
  mount(root, h("h1", {}, "Checkout"), h("div", { class: "sk-line" }));
  ready(false);

  cart().then((data) => {
    if (!alive) return;
    const lines = data ? data.lines.filter((l) => l.status === "held") : [];
    if (!lines.length) {
      mount(root, h("h1", {}, "Checkout"), h("p", { class: "empty", "data-testid": "cart-empty" },
        "Your cart is empty. ", h("a", { href: "/" }, "Browse the shop")));
      ready(true);
      return;
    }
    show(lines);
  }, (err) => {
    if (!alive) return;
    mount(root, h("h1", {}, "Checkout"), h("p", { class: "message error", "data-testid": "message" },
      err.message, " ", h("button", { type: "button", onclick: () => navigate("/checkout") }, "Try again")));
    ready(true);
  });

  function show(lines) {
    const method = h("select", { "data-testid": "payment-token", "aria-label": "Payment method" },
      METHODS.map(([value, label]) => h("option", { value }, label)));
    const offer = h("input", { "data-testid": "offer-code", "aria-label": "Offer code",
      placeholder: "Offer code (optional)", maxlength: 64, value: localStorage.getItem(OFFER_KEY) || "" });
    const message = h("p", { class: "message", "data-testid": "message", role: "alert" });
    const place = h("button", { type: "button", class: "primary", "data-testid": "place-order" }, "Place order");
    let total = 0;
    let currency = "EUR";
    const summary = lines.map((line) => {
      const info = skuInfo(line.sku) || {};
      if (info.price_cents !== undefined) {
        total += info.price_cents * line.qty;
        currency = info.currency || currency;
      }
      const size = info.size ? " · " + info.size : "";
      return h("li", {}, `${line.qty} × ${info.name || line.sku}${size}`);
    });

    // The server's quote is what the order will charge: the offer's discount included, on
    // the offer's product only and within its per-customer limit (rules kept in one place).
    const totalEl = h("p", { class: "total", "data-testid": "checkout-total" },
      "Total ", total ? money(total, currency) : "—");
    const discount = h("p", { class: "discount", "data-testid": "checkout-discount", hidden: true });
    let quoteSeq = 0;
    async function requote() {
      const seq = ++quoteSeq;
      const code = offer.value.trim();
      const body = { cart_id: cartId() };
      if (code) body.offer_code = code;
      try {
        const q = await request("/api/orders/quote", { method: "POST", auth: true, body, retries: 2 });
        if (!alive || seq !== quoteSeq) return;
        totalEl.replaceChildren("Total ", money(q.total_cents, q.currency));
        discount.hidden = !q.discount_cents;
        discount.textContent = q.discount_cents
          ? `Poll offer: −${money(q.discount_cents, q.currency)} · to pay ${money(q.charged_cents, q.currency)}`
          : "";
        if (code) message.textContent = "";
      } catch (err) {
        if (!alive || seq !== quoteSeq) return;
        discount.hidden = true;
        if (code && (err.code === "offer_invalid" || err.status === 422)) {
          message.className = "message error";
          message.textContent = `That offer code cannot be used: ${err.message}`;
        }
      }
    }
    offer.addEventListener("input", () => {
      clearTimeout(quoteTimer);
      quoteTimer = setTimeout(requote, 350);
    });
    takeOffer = (event) => {
      if (offer.value.trim()) return; // never replace what the shopper typed
      offer.value = event.detail;
      requote();
    };
    window.addEventListener("md:offer", takeOffer);

    place.addEventListener("click", async () => {
      place.disabled = true;
      message.className = "message";
      message.textContent = "Placing your order…";
      const body = { cart_id: cartId(), payment_token: method.value };
      const code = offer.value.trim();
      if (code) body.offer_code = code;
      try {
        const order = await request("/api/orders/", {
          method: "POST", auth: true, body, key: newKey(), retries: 6, extra: passHeader(),
        });
        forgetCart();
        if (code) localStorage.removeItem(OFFER_KEY);
        navigate(`/orders/${order.order_id}`);
      } catch (err) {
        message.className = "message error";
        message.textContent = err.code === "offer_invalid" ? `That offer code cannot be used: ${err.message}` : err.message;
        place.disabled = false;
      }
    });

    mount(root, h("h1", {}, "Checkout"),
      h("ul", { class: "summary" }, summary),
      totalEl, discount,
      h("div", { class: "pay" }, h("label", {}, "Pay with ", method), offer, place),
      message, h("div", { class: "polls" }));
    stopPolls = mountPolls(root.querySelector(".polls"), "checkout");
    ready(true);
    requote();
  }

  return () => {
    alive = false;
    stopPolls();
    clearTimeout(quoteTimer);
    if (takeOffer) window.removeEventListener("md:offer", takeOffer);
  };
}
