"""The Dockerfile builds on the Ray and Python pyproject.toml pins, runs as a non-root user,
and is the image the manifests name. No container is built here (the build itself is
recorded in docs/adr/0023-capacity-model.md)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
IMAGE = "ghcr.io/matchday/matchday"


def pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def pinned_ray() -> str:
    deps = pyproject()["project"]["dependencies"]  # type: ignore[index]
    (ray,) = [d for d in deps if d.startswith("ray[")]  # type: ignore[union-attr]
    return str(ray.split("==")[1])


def pinned_python() -> str:
    """The Python the project is checked against: mypy's and ruff's target, the venv's."""
    tool = pyproject()["tool"]
    mypy = str(tool["mypy"]["python_version"])  # type: ignore[index]
    ruff = str(tool["ruff"]["target-version"])  # type: ignore[index]
    assert ruff == "py" + mypy.replace(".", "")
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == mypy  # the venv's too
    return mypy


def base_image() -> tuple[str, str, str]:
    """(repository, Ray version, Python) of the Dockerfile's default base."""
    (arg,) = re.findall(r"^ARG RAY_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.M)
    m = re.fullmatch(r"(rayproject/ray):(\d+\.\d+\.\d+)-py(\d)(\d+)-cpu", arg)
    assert m, arg
    return m.group(1), m.group(2), f"{m.group(3)}.{m.group(4)}"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [x.strip() for x in text.splitlines() if x.strip() and not x.strip().startswith("#")]
    return [(x.split(None, 1)[0].upper(), x.split(None, 1)[1]) for x in lines]


def test_the_base_image_is_the_pinned_ray_on_the_pinned_python() -> None:
    repo, ray, python = base_image()
    assert repo == "rayproject/ray"
    assert ray == pinned_ray() == "2.60.0"
    assert python == pinned_python() == "3.11"
    froms = [v for op, v in instructions() if op == "FROM"]
    assert froms == ["${RAY_IMAGE}"]  # one stage, on that base


def test_the_build_checks_the_versions_it_got_and_runs_the_cli() -> None:
    (run,) = [v for op, v in instructions() if op == "RUN"]
    assert "pip install --no-cache-dir ." in run
    assert f"ray.__version__ == '{pinned_ray()}'" in run
    major, minor = pinned_python().split(".")
    assert f"sys.version_info[:2] == ({major}, {minor})" in run
    assert "matchday --help" in run


def test_the_image_runs_as_a_numeric_non_root_user() -> None:
    users = [v for op, v in instructions() if op == "USER"]
    assert users, "no USER: the image would run as the base's"
    final = users[-1].split(":")[0]
    # Numeric: Kubernetes can only check runAsNonRoot against a number.
    assert final.isdigit() and int(final) != 0
    copies = [v for op, v in instructions() if op == "COPY"]
    assert all("--chown=1000:100" in c for c in copies)


def test_the_manifests_name_the_image_this_dockerfile_builds() -> None:
    tag = f"{IMAGE}:{pinned_ray()}"
    assert f"-t {tag} ." in DOCKERFILE.read_text()  # how the header says to build it
    docs = yaml.safe_load_all((ROOT / "cluster" / "kuberay" / "rayservice.yaml").read_text())
    (service,) = [d for d in docs if d["kind"] == "RayService"]
    cluster = service["spec"]["rayClusterConfig"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    images = {c["image"] for g in groups for c in g["template"]["spec"]["containers"]}
    assert images == {tag}
    # The VM launcher runs Ray's image itself and installs matchday into it: the same base.
    launcher = yaml.safe_load((ROOT / "ray_cluster.yaml").read_text())
    repo, ray, python = base_image()
    assert launcher["docker"]["image"] == f"{repo}:{ray}-py{python.replace('.', '')}-cpu"


def test_the_build_context_leaves_out_what_the_image_must_not_carry() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # Secrets and local state never enter the image; nor does a 650 MB venv.
    assert {".git", ".venv", ".data", "tests"} <= ignored
    # ...but what `pip install .` reads does.
    for needed in ("pyproject.toml", "README.md", "matchday", "serve", "actors", "cluster"):
        assert needed not in ignored and (ROOT / needed).exists()
