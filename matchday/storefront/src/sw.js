// The storefront's service worker. The build fills in VERSION (the bundle's hash) and the
// precache list (the shell and every content-hashed asset), so each deploy gets its own
// caches and the old ones are deleted when the new worker takes over.
//
// Strategies: the shell and hashed assets from the precache (instant repeat loads, offline);
// stale-while-revalidate for the catalogue's GETs and product images (browse offline); the
// network only for carts, orders, polls, availability and every non-GET (never a stale cart
// or a replayed payment).

const VERSION = "__VERSION__";
const PRECACHE = __PRECACHE__;
const STATIC = `md-static-${VERSION}`;
const RUNTIME = `md-runtime-${VERSION}`;
const APP_PATHS = /^\/($|p\/|cart$|checkout$|orders\/|queue\/)/;
const BROWSE = /^\/(api\/catalog\/(products(\/[a-z0-9-]+)?|categories)|static\/img\/[a-z0-9-]+\.svg)$/;
// What the catalogue's first screen asks for (catalog.js: PAGE = 24, no filters): fetched into
// the runtime cache at activation, because the very first visit's requests were made before
// this worker controlled the page.
const HOME = ["/api/catalog/products?limit=24&offset=0", "/api/catalog/categories"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(STATIC).then((cache) => cache.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith("md-") && name !== STATIC && name !== RUNTIME) await caches.delete(name);
    }
    await self.clients.claim();
    await warm(HOME, true).catch(() => {});
  })());
});

// A page that loaded before this worker controlled it sends what it fetched, to keep offline.
self.addEventListener("message", (event) => {
  if (event.data && event.data.type === "keep" && Array.isArray(event.data.urls)) {
    event.waitUntil(warm(event.data.urls.slice(0, 100), false).catch(() => {}));
  }
});

async function warm(urls, withImages) {
  const cache = await caches.open(RUNTIME);
  for (const href of urls) {
    const url = new URL(href, self.location.origin);
    if (url.origin !== self.location.origin || !BROWSE.test(url.pathname)) continue;
    if (await cache.match(url.href)) continue;
    const response = await fetch(url.href);
    if (!response.ok) continue;
    await cache.put(url.href, response.clone());
    if (withImages && url.pathname === "/api/catalog/products") {
      const page = await response.json();
      await warm(page.items.map((item) => item.image_url), false);
    }
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate" && APP_PATHS.test(url.pathname)) {
    event.respondWith(shell(request));
  } else if (url.pathname.startsWith("/assets/")) {
    event.respondWith(precached(request));
  } else if (BROWSE.test(url.pathname)) {
    event.respondWith(staleWhileRevalidate(event));
  }
});

async function shell(request) {
  const cached = await caches.match("/", { cacheName: STATIC });
  return cached || fetch(request);
}

async function precached(request) {
  const cached = await caches.match(request, { cacheName: STATIC });
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) (await caches.open(STATIC)).put(request, response.clone());
  return response;
}

async function staleWhileRevalidate(event) {
  const cache = await caches.open(RUNTIME);
  const cached = await cache.match(event.request);
  const network = fetch(event.request).then((response) => {
    if (response.ok) cache.put(event.request, response.clone());
    return response;
  });
  if (cached) {
    event.waitUntil(network.catch(() => tellOffline(event.clientId)));
    return cached;
  }
  try {
    return await network;
  } catch {
    await tellOffline(event.clientId);
    const body = { code: "offline", message: "You are offline and this page is not saved on this device yet.", retryable: true };
    return new Response(JSON.stringify(body), {
      status: 503, headers: { "Content-Type": "application/json", "X-Offline": "1" },
    });
  }
}

async function tellOffline(clientId) {
  const client = clientId && await self.clients.get(clientId);
  if (client) client.postMessage({ type: "offline" });
}
