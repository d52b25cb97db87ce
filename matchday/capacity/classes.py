"""The request classes a profile measures, and the components their CPU is charged to.

A class is one kind of HTTP request a fan's app makes (the Locust personas' calls, named as
in ``loadtests/client.py``). A component is what the plan sizes: a Serve deployment's
replicas, the shards, the ingress, PostgreSQL, Redis, or Ray's own processes. Components are
named after the process roles ``matchday.ops.cpu_roles`` reports.
"""

from __future__ import annotations

BROWSE = "browse"  # GET /api/catalog/products (and best-sellers)
PRODUCT = "product"  # GET /api/catalog/products/{slug}
AVAILABILITY = "availability"  # GET /api/catalog/availability?sku=...
SESSION = "session"  # POST /api/shop/session: a new fan
CART = "cart"  # POST /api/shop/carts
ADD = "add_to_cart"  # POST /api/shop/carts/{cart}/items, stock left (201); also edits
ADD_SOLD_OUT = "add_sold_out"  # the same on a SKU with nothing left (409)
CART_VIEW = "cart_view"  # GET /api/shop/carts/{cart}
CHECKOUT = "checkout"  # POST /api/orders/ with the test gateway (a share declined)
ORDER_STATUS = "order_status"  # GET /api/orders/{order}
POLL_VOTE = "poll_vote"  # POST /api/polls/{poll}/votes

# In the order ``measure`` runs them: each phase uses what the one before made (fans, then
# their carts, then their items...).
CLASSES = (
    BROWSE,
    PRODUCT,
    AVAILABILITY,
    SESSION,
    CART,
    ADD,
    ADD_SOLD_OUT,
    CART_VIEW,
    CHECKOUT,
    ORDER_STATUS,
    POLL_VOTE,
)

# The Serve application that answers each class.
APP = {
    BROWSE: "catalog",
    PRODUCT: "catalog",
    AVAILABILITY: "catalog",
    SESSION: "shop",
    CART: "shop",
    ADD: "shop",
    ADD_SOLD_OUT: "shop",
    CART_VIEW: "shop",
    CHECKOUT: "orders",
    ORDER_STATUS: "orders",
    POLL_VOTE: "polls",
}

# Components (what the plan sizes), from process roles.
INGRESS = "ingress"
SHARDS = "shards"
POSTGRES = "postgres"
REDIS = "redis"
PUBLISHER = "publisher"
PAYMENTS_WORKER = "payments worker"
RAY = "ray"  # GCS, raylets, the Serve controller, agents: per node, not per request
LOAD_GENERATOR = "load generator"
REPLICA = "replica:"
# Roles whose processes are one per cluster and single-threaded: a core is their ceiling.
SINGLETONS = (PUBLISHER, PAYMENTS_WORKER)
# Roles that are not part of the shop: never charged to a request.
NOT_SHOP = (LOAD_GENERATOR, "foreign", "machine", "steal")

# The role the profile uses for the payments worker actor (``ray::PaymentsWorkerActor``).
PAYMENTS_WORKER_ROLE = "ray:payments worker"


def component(role: str) -> str | None:
    """The component a process role's CPU is charged to; None for what is not the shop."""
    if role in NOT_SHOP:
        return None
    if role in ("haproxy", "ray:proxy"):
        return INGRESS
    if role.startswith(REPLICA) or role in (SHARDS, POSTGRES, REDIS):
        return role
    if role == "ray:publisher":
        return PUBLISHER
    if role == PAYMENTS_WORKER_ROLE:
        return PAYMENTS_WORKER
    return RAY


def replica_role(app: str, deployment: str) -> str:
    """``replica:shop`` for an app's own deployment, ``replica:orders/Payments`` otherwise
    (the naming of ``matchday.ops.cpu_roles``)."""
    if deployment.lower() == app.lower():
        return f"{REPLICA}{app}"
    return f"{REPLICA}{app}/{deployment}"


def deployment_of(role: str) -> tuple[str, str | None]:
    """(app, deployment or None for the app's own) of a replica role."""
    app, _, deployment = role[len(REPLICA) :].partition("/")
    return app, deployment or None


def reachable(cls: str, role: str) -> bool:
    """Whether a request of ``cls`` can make ``role`` work: never another app's replicas,
    only a checkout wakes the payments worker, and none reaches Ray's control plane (GCS,
    raylets, Serve's controller, agents: replicas call the shards worker to worker). CPU a
    phase shows elsewhere is noise of the measurement (other apps' health checks, a metrics
    export, a tick of the clock), not the class's cost: the plan counts the control plane's
    burn per node, from the idle window."""
    if role.startswith(REPLICA):
        return deployment_of(role)[0] == APP[cls]
    if role == PAYMENTS_WORKER_ROLE:
        return cls == CHECKOUT
    return component(role) != RAY
