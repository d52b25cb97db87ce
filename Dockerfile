# syntax=docker/dockerfile:1
# The image cluster/kuberay/rayservice.yaml runs (ghcr.io/matchday/matchday:2.60.0): Ray's
# own image at the version pyproject.toml pins, with the same Python, and this repository
# installed. tests/unit/test_dockerfile.py keeps the tag, the pin and the manifests in step.
#
#   podman build -t ghcr.io/matchday/matchday:2.60.0 .     (or docker build / buildah bud)
#   podman run --rm ghcr.io/matchday/matchday:2.60.0 matchday --help
#
# RAY_IMAGE is an argument only so the build can be tried against a local stand-in where
# Docker Hub is out of reach (docs/adr/0023-capacity-model.md, "The image").
ARG RAY_IMAGE=rayproject/ray:2.60.0-py311-cpu
FROM ${RAY_IMAGE}

# The base image's user: ray, uid 1000, group users (100), home /home/ray, Python in
# /home/ray/anaconda3 (on PATH). Numeric, so Kubernetes' runAsNonRoot can check it.
USER 1000:100
WORKDIR /home/ray/matchday

# .dockerignore keeps the venv, data, caches, tests and docs out of the context.
COPY --chown=1000:100 . .
# ray[serve]==2.60.0 is already there; pip checks it and adds the rest of pyproject's list.
# The build fails here if the base's Python or Ray is not the one pyproject.toml pins.
RUN pip install --no-cache-dir . \
    && python -c "import sys, ray; assert sys.version_info[:2] == (3, 11), sys.version; assert ray.__version__ == '2.60.0', ray.__version__" \
    && matchday --help > /dev/null

ENV PYTHONUNBUFFERED=1
USER 1000
