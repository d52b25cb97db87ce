// Every call to the API goes through request(): JSON in and out, the shopper token, one
// Idempotency-Key per logical POST (kept across retries, so a retry can never act twice),
// and retries with backoff when the shop is busy (503/429 + Retry-After) or the network drops.

const TOKEN_KEY = "md.token";
const CART_KEY = "md.cart";
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Status of the connection for banners: {kind: "retrying", delay} | {kind: "offline"} | {kind: "ok"}
export function onStatus(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function tell(status) {
  for (const fn of listeners) fn(status);
}

export function newKey() {
  // crypto.randomUUID exists only in secure contexts; getRandomValues everywhere.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function backoff(attempt, retryAfter) {
  const seconds = Number(retryAfter);
  if (retryAfter && Number.isFinite(seconds)) return Math.min(30000, seconds * 1000);
  return Math.min(8000, 400 * 2 ** attempt) + Math.floor(Math.random() * 250);
}

export async function request(path, options = {}) {
  const { method = "GET", body, auth = false, retries = 4, signal, extra = {} } = options;
  const key = options.key || (method === "GET" ? null : newKey());
  let renewed = false;
  for (let attempt = 0; ; attempt++) {
    const headers = { Accept: "application/json", ...extra };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["Idempotency-Key"] = key;
    if (auth) headers.Authorization = `Bearer ${await token()}`;
    let res;
    try {
      res = await fetch(path, {
        method, headers, signal, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      tell({ kind: "offline" });
      if (attempt >= retries) {
        throw new ApiError(0, "offline", "You seem to be offline. We will retry when you are back.");
      }
      await sleep(backoff(attempt));
      continue;
    }
    if (res.headers.get("X-Offline") === "1") {
      tell({ kind: "offline" });
      throw new ApiError(0, "offline", "You are offline and this page is not saved on this device yet.");
    }
    if ((res.status === 503 || res.status === 429) && attempt < retries) {
      const delay = backoff(attempt, res.headers.get("Retry-After"));
      tell({ kind: "retrying", delay });
      await sleep(delay);
      continue;
    }
    if (res.status === 401 && auth && !renewed) {
      // The shop's secret changed or the token is from another shop: start a new session.
      renewed = true;
      localStorage.removeItem(TOKEN_KEY);
      localStorage.removeItem(CART_KEY);
      continue;
    }
    tell({ kind: "ok" });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const code = (data && data.code) || `http_${res.status}`;
      const message = (data && data.message) || `The shop answered ${res.status}.`;
      throw new ApiError(res.status, code, message);
    }
    return data;
  }
}

let pendingToken = null;

export async function token() {
  const saved = localStorage.getItem(TOKEN_KEY);
  if (saved) return saved;
  if (!pendingToken) {
    pendingToken = request("/api/shop/session", { method: "POST" })
      .then((session) => {
        localStorage.setItem(TOKEN_KEY, session.token);
        return session.token;
      })
      .finally(() => { pendingToken = null; });
  }
  return pendingToken;
}

// -- catalogue --------------------------------------------------------------------------------

const products = new Map(); // slug -> {at, promise}: what prefetching warmed up
const FRESH_MS = 30000;

export function product(slug) {
  const hit = products.get(slug);
  if (hit && Date.now() - hit.at < FRESH_MS) return hit.promise;
  const promise = request(`/api/catalog/products/${encodeURIComponent(slug)}`);
  products.set(slug, { at: Date.now(), promise });
  promise.catch(() => products.delete(slug));
  return promise;
}

// A listing already carries each product: the product page can start from it at once.
export function seedProduct(item) {
  if (!products.has(item.slug)) {
    products.set(item.slug, { at: Date.now(), promise: Promise.resolve(item) });
  }
}

// Likely next page: fetch its JSON once (the service worker keeps it for offline use too).
const warmed = new Set();
export function prefetchProduct(slug) {
  if (warmed.has(slug)) return;
  warmed.add(slug);
  const promise = request(`/api/catalog/products/${encodeURIComponent(slug)}`, { retries: 0 });
  promise.then(() => products.set(slug, { at: Date.now(), promise }), () => warmed.delete(slug));
}

// -- cart -------------------------------------------------------------------------------------

export function cartId() {
  return localStorage.getItem(CART_KEY);
}

export function forgetCart() {
  localStorage.removeItem(CART_KEY);
  window.dispatchEvent(new Event("cart-changed"));
}

async function openCart() {
  const cart = await request("/api/shop/carts", { method: "POST", auth: true });
  localStorage.setItem(CART_KEY, cart.cart_id);
  return cart.cart_id;
}

export async function cart() {
  const id = cartId();
  if (!id) return null;
  try {
    return await request(`/api/shop/carts/${id}`, { auth: true });
  } catch (err) {
    if (err.status === 404) {
      forgetCart();
      return null;
    }
    throw err;
  }
}

export async function addItem(sku, qty) {
  const key = newKey();
  for (let fresh = false; ; fresh = true) {
    const id = cartId() || (await openCart());
    try {
      const line = await request(`/api/shop/carts/${id}/items`, {
        method: "POST", auth: true, key, body: { sku, qty }, extra: passHeader(),
      });
      window.dispatchEvent(new Event("cart-changed"));
      return line;
    } catch (err) {
      // A cart that was checked out (409 conflict) or is gone (404): start a new one, once.
      const stale = err.status === 404 && err.code === "not_found" ||
        err.status === 409 && err.code === "conflict";
      if (!stale || fresh) throw err;
      localStorage.removeItem(CART_KEY);
    }
  }
}

export async function setQuantity(sku, qty) {
  const result = await request(`/api/shop/carts/${cartId()}/items/${encodeURIComponent(sku)}`, {
    method: qty > 0 ? "PUT" : "DELETE", auth: true, body: qty > 0 ? { qty } : undefined,
    extra: passHeader(),
  });
  window.dispatchEvent(new Event("cart-changed"));
  return result;
}

// -- the waiting room's passes ---------------------------------------------------------------

const PASSES_KEY = "md.passes"; // drop id -> {pass, expires_at}: what add and checkout send

// Checkout takes a pass up to 15 minutes past its expiry (the hold it bought is still there).
const PASS_GRACE_S = 900;

export function savePass(dropId, granted) {
  const passes = JSON.parse(localStorage.getItem(PASSES_KEY) || "{}");
  passes[dropId] = { pass: granted.pass, expires_at: granted.expires_at };
  localStorage.setItem(PASSES_KEY, JSON.stringify(passes));
}

export function passHeader() {
  const passes = JSON.parse(localStorage.getItem(PASSES_KEY) || "{}");
  const now = Date.now() / 1000;
  const live = Object.values(passes).filter((p) => p.expires_at + PASS_GRACE_S > now);
  return live.length ? { "X-Matchday-Pass": live.map((p) => p.pass).join(",") } : {};
}

// -- what the shopper reads ----------------------------------------------------------------

export function describeError(err) {
  if (err.code === "out_of_stock") return `Sold out: ${err.message}`;
  if (err.code === "limit_exceeded") return `Over the limit: ${err.message}`;
  if (err.code === "reservation_expired") return `Your hold expired: ${err.message}`;
  return err.message;
}

const NAMES_KEY = "md.skus";

// What the cart shows for a SKU, remembered when it was added (the cart API knows SKUs only).
export function rememberSku(sku, info) {
  const names = JSON.parse(localStorage.getItem(NAMES_KEY) || "{}");
  names[sku] = info;
  localStorage.setItem(NAMES_KEY, JSON.stringify(names));
}

export function skuInfo(sku) {
  return JSON.parse(localStorage.getItem(NAMES_KEY) || "{}")[sku] || null;
}

