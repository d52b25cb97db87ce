"""The storefront: a small PWA (plain ES modules, no framework) built into a content-hashed,
minified, precompressed bundle by :mod:`matchday.storefront.build` and served by
``matchday.web.storefront_app``."""
