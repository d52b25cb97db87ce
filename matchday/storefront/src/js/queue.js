// The waiting room of a drop (ADR 0026): join once (with a small proof of work), then watch
// the place move, live over server-sent events with polling as the fallback. The ticket is
// kept in localStorage, so a tab that sleeps or reloads keeps its place. Once admitted, the
// pass is claimed, kept, and the fan goes straight back to the product page.

import { h, mount, mmss, ready } from "./dom.js";
import { request, savePass } from "./api.js";

const POLL_MS = 2000;
const ticketKey = (dropId) => `md.ticket.${dropId}`;

export function render(root, { dropId }, { navigate }) {
  const next = new URLSearchParams(location.search).get("next") || "/";
  const back = next.startsWith("/") && !next.startsWith("//") ? next : "/";
  const title = h("h1", {}, "You are in the queue");
  const state = h("p", { class: "status", "data-testid": "queue-state", "aria-live": "polite" }, "Joining…");
  const position = h("p", { class: "queue-position", "data-testid": "queue-position" });
  const wait = h("p", { class: "queue-wait", "data-testid": "queue-wait" });
  mount(root, h("section", { class: "queue" }, title, state, position, wait,
    h("p", { class: "hint" }, "Keep this page open: you go to the product as soon as it is your turn.")));
  let alive = true;
  let stream = null;
  let timer = null;
  let claiming = false;

  function stop() {
    alive = false;
    if (stream) stream.close();
    clearInterval(timer);
    document.removeEventListener("visibilitychange", onVisible);
  }

  function show(status) {
    if (!alive) return;
    const words = {
      scheduled: "The drop has not opened yet: your place is kept.",
      waiting: "Waiting for your turn.",
      paused: "The queue is paused for a moment: your place is kept.",
      sold_out: status.held > 0
        ? `Sold out for now: ${status.held} in other fans' carts may come back.`
        : "Sold out.",
      closed: "This drop has ended.",
      expired: "Your turn came and went: the pass was not used in time.",
      admitted: "It is your turn!",
    };
    state.textContent = words[status.state] || status.state;
    state.dataset.state = status.state;
    position.textContent = status.position ? `Your place in line: ${status.position}` : "";
    wait.textContent = status.estimated_wait_s != null && status.state === "waiting"
      ? `About ${mmss(status.estimated_wait_s)} to go` : "";
    ready(true);
    if (status.state === "admitted") claim();
    if (["closed", "expired"].includes(status.state)) stop();
  }

  async function claim() {
    if (claiming) return;
    claiming = true;
    stop();
    try {
      const granted = await request(`/api/shop/drops/${dropId}/pass`, {
        method: "POST", auth: true, body: { ticket: localStorage.getItem(ticketKey(dropId)) },
      });
      savePass(dropId, granted);
      navigate(back, { replace: true });
    } catch (err) {
      state.textContent = err.message;
    }
  }

  async function poll() {
    const ticket = localStorage.getItem(ticketKey(dropId));
    if (!alive || !ticket) return;
    try {
      const q = encodeURIComponent(ticket);
      show(await request(`/api/shop/drops/${dropId}/status?ticket=${q}`, { retries: 1 }));
    } catch (err) {
      if (err.status === 403 || err.status === 410 || err.status === 422) {
        localStorage.removeItem(ticketKey(dropId)); // another session's or a stale ticket
        join();
      }
    }
  }

  function follow(ticket) {
    if (typeof EventSource === "undefined") return startPolling();
    let failures = 0;
    stream = new EventSource(`/api/shop/drops/${dropId}/events?ticket=${encodeURIComponent(ticket)}`);
    stream.addEventListener("status", (event) => {
      failures = 0;
      show(JSON.parse(event.data));
    });
    stream.onerror = () => {
      // The server ends each stream after a while (EventSource reconnects by itself); when it
      // keeps failing, fall back to polling.
      if (++failures >= 3 && alive) {
        stream.close();
        startPolling();
      }
    };
  }

  function startPolling() {
    clearInterval(timer);
    timer = setInterval(poll, POLL_MS);
    poll();
  }

  // A tab that slept: ask at once, and the stream picks up again.
  function onVisible() {
    if (document.visibilityState === "visible") poll();
  }
  document.addEventListener("visibilitychange", onVisible);

  async function join() {
    try {
      let ticket = localStorage.getItem(ticketKey(dropId));
      if (!ticket) {
        const body = await work();
        const status = await request(`/api/shop/drops/${dropId}/tickets`, { method: "POST", auth: true, body });
        ticket = status.ticket;
        localStorage.setItem(ticketKey(dropId), ticket);
        show(status);
      }
      if (alive) {
        poll();
        follow(ticket);
      }
    } catch (err) {
      state.textContent = err.message;
      ready(true);
    }
  }

  // The drop's puzzle: a nonce whose SHA-256 with the challenge starts with `bits` zero bits.
  // Without WebCrypto the fan still queues (behind those who solved it).
  async function work() {
    const drop = await request(`/api/shop/drops/${dropId}`);
    if (!drop.pow_bits || !(crypto && crypto.subtle)) return {};
    const c = await request(`/api/shop/drops/${dropId}/challenge`, { method: "POST", auth: true });
    state.textContent = "Checking your browser…";
    const encoder = new TextEncoder();
    for (let n = 0; alive; n++) {
      const nonce = n.toString(16);
      const digest = await crypto.subtle.digest("SHA-256", encoder.encode(`${c.challenge}.${nonce}`));
      const head = new DataView(digest).getUint32(0);
      if (Math.clz32(head) >= c.bits) return { challenge: c.challenge, nonce };
    }
    return {};
  }

  join();
  return stop;
}
