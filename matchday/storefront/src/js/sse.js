// Server-sent events over fetch(): EventSource cannot send the Authorization header the order
// stream needs. Reconnects with Last-Event-ID (the server resumes after it) and backs off.

import { token } from "./api.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export function follow(url, { auth = false, onEvent, onGone, isDone = () => false }) {
  let lastId = null;
  let stopped = false;
  let controller = null;

  async function loop() {
    for (let attempt = 0; !stopped && !isDone(); ) {
      controller = new AbortController();
      try {
        const headers = { Accept: "text/event-stream" };
        if (auth) headers.Authorization = `Bearer ${await token()}`;
        if (lastId) headers["Last-Event-ID"] = lastId;
        const res = await fetch(url, { headers, signal: controller.signal, cache: "no-store" });
        if (res.status >= 400 && res.status < 500 && res.status !== 429) {
          if (onGone) onGone(res.status);
          return; // no such stream: retrying cannot help
        }
        if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
        attempt = 0;
        for await (const event of events(res.body)) {
          if (event.id) lastId = event.id;
          onEvent(event);
          if (isDone()) break;
        }
      } catch (err) {
        if (stopped) return;
      }
      if (stopped || isDone()) break;
      // The server ends streams after a few minutes on purpose: come back quickly then, and
      // back off when it is failing.
      await sleep(attempt === 0 ? 250 : Math.min(10000, 500 * 2 ** attempt));
      attempt++;
    }
    if (controller) controller.abort();
  }

  loop();
  return () => {
    stopped = true;
    if (controller) controller.abort();
  };
}

export async function* events(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer = (buffer + value).replace(/\r\n|\r(?!$)/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseBlock(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) yield event;
    }
  }
}

function parseBlock(block) {
  const event = { id: null, event: "message", data: [] };
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // comments are keep-alives
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") event.data.push(value);
    else if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
  }
  if (!event.data.length) return null;
  return { ...event, data: event.data.join("\n") };
}
