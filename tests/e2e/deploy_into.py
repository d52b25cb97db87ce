"""Deploy the stack's apps of serve_config.yaml plus extra apps on a running `matchday run`,
from a process of its own (the test process may already drive another Ray cluster).

    python -m tests.e2e.deploy_into '<stack.json content>' '[<app config>, ...]'
"""

from __future__ import annotations

import json
import logging
import os
import sys

from actors.ray_env import keep_ray_on_loopback
from cluster.serving import deploy, load_config


def main(state_json: str, apps_json: str) -> None:
    keep_ray_on_loopback()
    import ray

    state = json.loads(state_json)
    ray.init(
        address=state["ray_address"],
        namespace=state["namespace"],
        logging_level=logging.ERROR,
        log_to_driver=False,
    )
    # The stack's own apps (`matchday run --apps`), so that none it left out starts here.
    # Its TLS too: Serve's HTTP options are the stack's, and a deploy should not differ.
    config = load_config(
        host="127.0.0.1", port=int(state["http_port"]), apps=state.get("apps"),
        tls_certfile=os.environ.get("MATCHDAY_TLS_CERTFILE"),
        tls_keyfile=os.environ.get("MATCHDAY_TLS_KEYFILE"),
    )  # fmt: skip
    config["applications"] += json.loads(apps_json)
    deploy(config, say=lambda _: None)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
