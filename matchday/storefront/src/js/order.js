// An order's status, live: history first, then each change, from the order's event stream.

import { h, mount, money, ready } from "./dom.js";
import { addItem, describeError, request } from "./api.js";
import { follow } from "./sse.js";

const TERMINAL = new Set(["paid", "payment_failed", "cancelled", "refunded"]);
const SAY = {
  pending_payment: "We are taking your payment.",
  payment_pending: "The payment provider has not answered yet: we are checking and will confirm here. Do not pay again.",
  requires_action: "Your bank asks you to confirm this payment.",
  review: "Your order is being reviewed; we will confirm it shortly.",
  paid: "Paid, thank you.",
  payment_failed: "The payment was declined: nothing was charged. Hold the items again and try another card.",
  cancelled: "The order was cancelled; any payment taken has been refunded.",
  refunded: "Your payment has been refunded.",
};

// Endings the server explains in its own words (why, what was charged, what to do next);
// a plain decline keeps the sentence above.
const EXPLAINED = new Set(["payment_timeout", "hold_lost", "sold_out_refunded", "partly_refunded"]);

// What to tell the shopper: the server's reason for an ending it explains, else the status.
// ``why`` is the order's failure or a status event's detail: both carry code and message.
function sayFor(status, why) {
  if (why && EXPLAINED.has(why.code) && why.message) return why.message;
  return SAY[status] || "";
}

export function render(root, { orderId }, { navigate } = {}) {
  let alive = true;
  let stop = () => {};
  let status = null;
  mount(root, h("h1", {}, "Your order"), h("div", { class: "sk-line" }));
  ready(false);

  request(`/api/orders/${orderId}`, { auth: true }).then((order) => {
    if (!alive) return;
    status = order.status;
    const statusEl = h("strong", { "data-testid": "order-status" }, order.status);
    const say = h("p", { class: "say", "data-testid": "order-say", "aria-live": "polite" },
      sayFor(order.status, order.failure));
    // A declined card released the order's holds: put the same lines back in a cart (what is
    // still there to hold) and go back to checkout, rather than making the fan start over.
    const retryMessage = h("p", { class: "message error", "data-testid": "retry-message", role: "alert" });
    const retry = h("button", { type: "button", class: "primary", "data-testid": "retry-order" },
      "Hold these items again and pay another way");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      retryMessage.textContent = "";
      const refused = [];
      let held = 0;
      for (const line of order.lines) {
        try {
          await addItem(line.sku, line.qty);
          held += 1;
        } catch (err) {
          refused.push(`${line.title}: ${describeError(err)}`);
        }
      }
      if (!alive) return;
      if (held && !refused.length && navigate) {
        navigate("/checkout");
        return;
      }
      retryMessage.textContent = refused.join(" · ") +
        (held ? " The rest is held in your cart." : "");
      retry.disabled = held > 0;
    });
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
      retry, retryMessage,
      h("a", { href: "/" }, "Continue shopping"));
    retry.hidden = status !== "payment_failed";
    ready(true);
    if (TERMINAL.has(status)) return;
    stop = follow(`/api/orders/${orderId}/events`, {
      auth: true,
      onEvent: (event) => {
        if (event.event !== "status") return;
        let detail;
        try {
          ({ status, detail } = JSON.parse(event.data));
        } catch {
          return;
        }
        statusEl.textContent = status;
        say.textContent = sayFor(status, detail);
        retry.hidden = status !== "payment_failed";
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
