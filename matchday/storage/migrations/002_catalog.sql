-- The product catalogue. Written only by matchday.storage.catalog_repo; stock lives in
-- inventory (001) and a variant's SKU must exist there first, so a product can never offer
-- a SKU the engine does not know.

CREATE TABLE categories (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    position    integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE products (
    product_id     text PRIMARY KEY CHECK (product_id ~ '^[a-z0-9][a-z0-9-]{0,63}$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    description    text NOT NULL DEFAULT '',
    category       text NOT NULL REFERENCES categories (slug),
    team           text,
    tags           text[] NOT NULL DEFAULT '{}',
    price_cents    bigint NOT NULL CHECK (price_cents >= 0),
    currency       text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    image_url      text NOT NULL,
    -- The merchandiser's order for sort=featured: lower comes first.
    featured_rank  integer NOT NULL DEFAULT 1000,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- 'simple' (no stemming) because team and player names are not English; the service
    -- searches by word prefix instead. Name and team outrank the description.
    search         tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple'::regconfig, name), 'A')
        || setweight(to_tsvector('simple'::regconfig, coalesce(team, '')), 'A')
        || setweight(to_tsvector('simple'::regconfig, description), 'B')
    ) STORED
);
-- Every listing filters on active, so the indexes cover active products only.
CREATE INDEX products_featured ON products (featured_rank, product_id) WHERE active;
CREATE INDEX products_by_category ON products (category, featured_rank, product_id) WHERE active;
CREATE INDEX products_by_category_price ON products (category, price_cents, product_id) WHERE active;
CREATE INDEX products_by_price ON products (price_cents, product_id) WHERE active;
CREATE INDEX products_newest ON products (created_at DESC, product_id) WHERE active;
CREATE INDEX products_search ON products USING gin (search) WHERE active;
CREATE INDEX products_tags ON products USING gin (tags) WHERE active;
CREATE INDEX products_by_team ON products (team, featured_rank, product_id) WHERE active;

CREATE TABLE variants (
    sku          text PRIMARY KEY REFERENCES inventory (sku),
    product_id   text NOT NULL REFERENCES products (product_id),
    size         text,
    colour       text,
    price_cents  bigint CHECK (price_cents >= 0),  -- overrides the product's price when set
    position     integer NOT NULL DEFAULT 0,
    CONSTRAINT variants_unique_option UNIQUE NULLS NOT DISTINCT (product_id, size, colour)
);
CREATE INDEX variants_by_product ON variants (product_id, position, sku);
-- Size and colour filters are EXISTS probes from a product: (value, product) answers them.
CREATE INDEX variants_by_size ON variants (size, product_id);
CREATE INDEX variants_by_colour ON variants (colour, product_id);
