"""Ray Serve deployments (storefront API, checkout, payments, admin, webhooks).

One app module per deployment, composed through handles; each talks to inventory through
``actors.client.connect_client``. Issue 3 builds them; nothing here is served yet.
"""
