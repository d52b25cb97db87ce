// The catalogue: filters in the URL's query string (so back/forward and the offline cache see
// the same request), skeleton cards while loading, lazy images, prefetch of likely next pages.

import { h, mount, money, ready, skeletonCards } from "./dom.js";
import { request, seedProduct, prefetchProduct } from "./api.js";

const PAGE = 24;
const VIEWPORT_PREFETCH = 6; // cards whose JSON is fetched once seen: bounded, rate limits apply

let categories = null;

export function render(root, _params, { navigate }) {
  const query = new URLSearchParams(location.search);
  const status = h("p", { class: "status", "data-testid": "catalog-status", role: "status" });
  const grid = h("ul", { class: "grid" });
  const more = h("button", { class: "more", hidden: true, type: "button" }, "Show more");
  const category = h("select", { "data-testid": "filter-category", "aria-label": "Category" },
    h("option", { value: "" }, "All categories"));
  const inStock = h("input", { type: "checkbox", "data-testid": "filter-instock" });
  const search = h("input", {
    type: "search", "data-testid": "search", placeholder: "Search kits, boots, balls",
    "aria-label": "Search", value: query.get("q") || "", maxlength: 100,
  });
  inStock.checked = query.get("in_stock") === "1";
  let pendingCategory = query.get("category") || ""; // until the options have arrived
  let seen = 0;
  let generation = 0;
  let offset = 0;

  const observer = "IntersectionObserver" in window ? new IntersectionObserver((entries) => {
    for (const entry of entries) {
      if (!entry.isIntersecting) continue;
      observer.unobserve(entry.target);
      if (seen++ < VIEWPORT_PREFETCH) idle(() => prefetchProduct(entry.target.dataset.slug));
    }
  }, { rootMargin: "200px" }) : null;

  function filters() {
    const params = new URLSearchParams();
    const cat = category.value || pendingCategory;
    if (cat) params.set("category", cat);
    if (inStock.checked) params.set("in_stock", "1");
    const q = search.value.trim();
    if (q) params.set("q", q);
    return params;
  }

  function card(item) {
    seedProduct(item);
    const link = h("a", {
      class: "card", href: `/p/${item.slug}`, "data-testid": "product-card", "data-slug": item.slug,
      onmouseenter: () => prefetchProduct(item.slug),
      onfocus: () => prefetchProduct(item.slug),
      ontouchstart: () => prefetchProduct(item.slug),
    },
      h("img", { src: item.image_url, alt: "", loading: "lazy", decoding: "async", width: 320, height: 320 }),
      h("span", { class: "name" }, item.name),
      h("span", { class: "price" }, money(item.price_cents, item.currency)),
      item.in_stock ? null : h("span", { class: "badge" }, "Sold out"));
    if (observer) observer.observe(link);
    return h("li", {}, link);
  }

  async function load(append) {
    const mine = ++generation;
    const params = filters();
    if (!append) {
      offset = 0;
      history.replaceState(history.state, "", params.toString() ? `/?${params}` : "/");
      mount(grid, skeletonCards(8));
      status.textContent = "Loading products…";
      ready(false);
    }
    params.set("limit", String(PAGE));
    params.set("offset", String(offset));
    if (params.has("in_stock")) params.set("in_stock", "true");
    try {
      const page = await request(`/api/catalog/products?${params}`);
      if (mine !== generation) return;
      if (!append) grid.replaceChildren();
      grid.append(...page.items.map(card));
      offset = page.next_offset ?? offset;
      more.hidden = page.next_offset === null;
      status.textContent = page.total ? "" : "No products match these filters.";
      ready(true);
    } catch (err) {
      if (mine !== generation) return;
      if (!append) grid.replaceChildren();
      mount(status, err.message, " ",
        h("button", { type: "button", onclick: () => load(append) }, "Try again"));
      ready(true);
    }
  }

  async function loadCategories() {
    try {
      categories = categories || await request("/api/catalog/categories");
      for (const c of categories) category.append(h("option", { value: c.slug }, c.name));
      category.value = pendingCategory;
    } catch {
      // The list still works without the category filter.
    }
    pendingCategory = "";
  }

  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => load(false), 250);
  });
  category.addEventListener("change", () => { pendingCategory = ""; load(false); });
  inStock.addEventListener("change", () => load(false));
  more.addEventListener("click", () => load(true));

  mount(root,
    h("section", { class: "filters" },
      search, category, h("label", { class: "check" }, inStock, " In stock only")),
    status, grid, more);
  load(false);
  loadCategories();
  return () => {
    generation++;
    clearTimeout(typing);
    if (observer) observer.disconnect();
  };
}

function idle(fn) {
  if ("requestIdleCallback" in window) requestIdleCallback(fn, { timeout: 2000 });
  else setTimeout(fn, 200);
}
