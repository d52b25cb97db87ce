"""Ray Serve deployments: one app module per HTTP surface, composed through handles.

Each ingress deployment is a thin wrapper: it opens a :class:`matchday.web.context.ShopContext`
in its (async) constructor and serves the FastAPI app that ``matchday/web`` builds from it.
``serve_config.yaml`` at the top level deploys them all (``serve deploy serve_config.yaml``);
``matchday run`` deploys the same file.
"""
