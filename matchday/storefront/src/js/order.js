// An order's status, live: history first, then each change, from the order's event stream.

import { h, mount, money, ready } from "./dom.js";
import { request } from "./api.js";
import { follow } from "./sse.js";

const TERMINAL = new Set(["paid", "payment_failed", "cancelled", "refunded"]);
const SAY = {
  pending_payment: "We are taking your payment.",
  payment_pending: "The payment provider has not answered yet: we are checking and will confirm here. Do not pay again.",
  requires_action: "Your bank asks you to confirm this payment.",
  review: "Your order is being reviewed; we will confirm it shortly.",
  paid: "Paid, thank you.",
  payment_failed: "The payment was declined: add the items again and try another card.",
  cancelled: "The order was cancelled; any payment taken has been refunded.",
  refunded: "Your payment has been refunded.",
};

export function render(root, { orderId }) {
  let alive = true;
  let stop = () => {};
  let status = null;
  mount(root, h("h1", {}, "Your order"), h("div", { class: "sk-line" }));
  ready(false);

  request(`/api/orders/${orderId}`, { auth: true }).then((order) => {
    if (!alive) return;
    status = order.status;
    const statusEl = h("strong", { "data-testid": "order-status" }, order.status);
    const say = h("p", { class: "say", "aria-live": "polite" }, SAY[order.status] || "");
    const discount = order.discount_cents
      ? h("p", {}, `Subtotal ${money(order.total_cents, order.currency)}, discount ` +
        `${money(order.discount_cents, order.currency)}` +
        (order.offer_code ? ` (${order.offer_code})` : ""))
      : null;
    mount(root, h("h1", {}, "Your order"),
      h("p", {}, "Order ", h("code", {}, order.order_id), ": ", statusEl), say,
      h("ul", { class: "summary" }, order.lines.map((l) =>
        h("li", {}, `${l.qty} × ${l.title} · ${money(l.unit_price_cents * l.qty, order.currency)}`))),
      discount,
      // total_cents is the lines' sum; what is charged is that less a poll offer's discount.
      h("p", { class: "total" }, "Total ", h("span", { "data-testid": "order-total" },
        money(order.total_cents - (order.discount_cents || 0), order.currency))),
      h("a", { href: "/" }, "Continue shopping"));
    ready(true);
    if (TERMINAL.has(status)) return;
    stop = follow(`/api/orders/${orderId}/events`, {
      auth: true,
      onEvent: (event) => {
        if (event.event !== "status") return;
        try {
          status = JSON.parse(event.data).status;
        } catch {
          return;
        }
        statusEl.textContent = status;
        say.textContent = SAY[status] || "";
      },
      isDone: () => !alive || TERMINAL.has(status),
    });
  }, (err) => {
    if (!alive) return;
    mount(root, h("h1", {}, "Your order"), h("p", { class: "message error", "data-testid": "message" },
      err.status === 404 ? "We could not find that order on this device's session." : err.message));
    ready(true);
  });

  return () => {
    alive = false;
    stop();
  };
}
