"""Ray Serve deployments: one app module per HTTP surface, composed through handles.

Each ingress deployment is a thin wrapper: in its (async) constructor it opens the context its
app needs through ``matchday.bootstrap`` (handing in what only Ray can make: the engine client,
a gateway over the Payments deployment, Ray's metrics) and serves the FastAPI app that
``matchday/web`` builds from it.
``serve_config.yaml`` at the top level deploys them all (``serve deploy serve_config.yaml``);
``matchday run`` deploys the same file.
"""
