// Polls beside a product or the checkout: vote once, results live from the poll's event
// stream, and the personal offer code when the poll carries one. If the polls API is not there
// (or fails), nothing renders: a poll is never in the way of buying.

import { h } from "./dom.js";
import { request } from "./api.js";
import { follow } from "./sse.js";

export const OFFER_KEY = "md.offer";
// Each poll shown holds a results stream open, and a browser keeps at most six connections
// to one host over HTTP/1.1: with a stream per poll, enough open polls would leave the
// checkout's POST queued in the browser for ever. The newest two are shown.
const MAX_POLLS = 2;

export function mountPolls(container, placement) {
  let stopped = false;
  const stops = [];
  request(`/api/polls?placement=${encodeURIComponent(placement)}`, { retries: 1 }).then((data) => {
    if (stopped || !data || !Array.isArray(data.polls)) return;
    for (const poll of data.polls.slice(0, MAX_POLLS)) container.append(widget(poll, stops));
  }, () => {});
  return () => {
    stopped = true;
    for (const stop of stops) stop();
  };
}

function widget(poll, stops) {
  let state = { ...poll };
  const results = h("ul", { class: "poll-results", "data-testid": "poll-results", "aria-live": "polite" });
  const offer = h("p", { class: "poll-offer", "data-testid": "poll-offer", hidden: true });
  const message = h("p", { class: "message" });
  const options = h("div", { class: "poll-options" });
  const root = h("section", { class: "poll", "data-testid": "poll", "data-poll-id": poll.poll_id },
    h("h2", {}, poll.question), options, results, offer, message);

  function paint() {
    const voted = state.my_vote;
    options.replaceChildren(...state.options.map((o) => h("button", {
      type: "button", class: voted === o.option_id ? "poll-option chosen" : "poll-option",
      "data-testid": "poll-option", "data-option-id": o.option_id,
      disabled: Boolean(voted) || state.status !== "open",
      onclick: () => vote(o.option_id),
    }, o.label)));
    const total = state.total || 0;
    results.replaceChildren(...state.options.map((o) => {
      const count = (state.results || {})[o.option_id] || 0;
      const pct = total ? Math.round((100 * count) / total) : 0;
      return h("li", {}, h("span", {}, `${o.label}: ${count} (${pct}%)`),
        h("progress", { max: Math.max(total, 1), value: count }));
    }));
    results.append(h("li", { class: "total" },
      `${total} vote${total === 1 ? "" : "s"}${state.status === "open" ? "" : " · closed"}`));
    if (state.offer) {
      const o = state.offer;
      offer.hidden = false;
      offer.textContent = `Thanks for voting! Your code ${o.code}: ${o.percent_off}% off` +
        ` until ${new Date(o.expires_at * 1000).toLocaleString()}.`;
      if (localStorage.getItem(OFFER_KEY) !== o.code) {
        localStorage.setItem(OFFER_KEY, o.code);
        // The checkout page, if open, takes the new code at once (and quotes it).
        window.dispatchEvent(new CustomEvent("md:offer", { detail: o.code }));
      }
    }
  }

  async function vote(optionId) {
    message.textContent = "";
    try {
      const answer = await request(`/api/polls/${poll.poll_id}/votes`, {
        method: "POST", auth: true, body: { option_id: optionId },
      });
      state = { ...state, my_vote: answer.option_id, results: answer.results, total: answer.total,
        offer: answer.offer || state.offer };
    } catch (err) {
      message.textContent = err.message;
      if (err.code === "already_voted" || err.code === "poll_closed") await mine();
    }
    paint();
  }

  async function mine() {
    if (!localStorage.getItem("md.token")) return; // no session yet: nothing voted
    try {
      const full = await request(`/api/polls/${poll.poll_id}`, { auth: true, retries: 1 });
      state = { ...state, ...full };
      paint();
    } catch {
      // Results still stream; the vote state shows after the next vote attempt.
    }
  }

  paint();
  mine();
  if (state.status === "open") {
    stops.push(follow(`/api/polls/${poll.poll_id}/events`, {
      onEvent: (event) => {
        if (event.event !== "results") return;
        try {
          const data = JSON.parse(event.data);
          state = { ...state, results: data.results, total: data.total, status: data.status || state.status };
          paint();
        } catch {
          // A malformed event is skipped; the next one carries the full results again.
        }
      },
      isDone: () => state.status !== "open",
    }));
  }
  return root;
}
