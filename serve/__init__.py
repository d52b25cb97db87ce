"""Ray Serve deployments: one app module per HTTP surface, composed through handles.

Each ingress deployment is a thin wrapper: in its (async) constructor it opens the context its
app needs through ``matchday.bootstrap`` (handing in what only Ray can make: the engine client,
a gateway over the Payments deployment, Ray's metrics) and serves the FastAPI app that
``matchday/web`` builds from it.
``serve_config.yaml`` at the top level deploys them all (``serve deploy serve_config.yaml``);
``matchday run`` deploys the same file.

An app's module imports ``matchday.web`` inside ``__serve_build_asgi_app__``, not at the top:
Serve builds each app in a task of its own, in a fresh worker process (``max_calls=1``), which
imports the module only to call ``build_app`` and bind the deployment. The HTTP layer
(FastAPI, the routes, the services they import) cost each such process ~1 s of CPU that the
replica, which builds the app, pays anyway.
"""
