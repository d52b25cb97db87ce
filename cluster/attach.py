"""``matchday env``: what an operator's shell or script needs to attach to the stack's Ray.

From a plain shell, ``ray.init(address="auto")`` and ``ray status`` hung or failed against a
``matchday run`` stack, for three reasons that no message named:

- the address: ``matchday run`` starts Ray with ``ray.init()``, which (unlike ``ray start``)
  leaves no ``/tmp/ray/ray_current_cluster``; "auto" then picks any GCS process it finds;
- the node address: a single-machine stack keeps Ray on 127.0.0.1 (ADR 0004), and a driver
  without the same switch looks for a raylet on the machine's own address and waits;
- the token: Ray 2.60 turns token authentication on by default. Its loader
  (``ray._raylet.AuthenticationTokenLoader``) reads ``RAY_AUTH_TOKEN``, else the file named
  by ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``; ``ray.init()`` creates that last
  one (mode 0644 under the usual umask) when no token exists.

So ``matchday run`` writes the answer to ``<data_dir>/ray.env`` (mode 0600: ``export`` lines
for ``RAY_ADDRESS``, ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN_PATH`` and, on loopback,
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``) and prints it. The token itself stays in its file
unless ``matchday env --inline-token`` is asked for (a shell on another machine). ADR 0021.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from matchday.settings import Settings

ENV_FILE = "ray.env"
# Only when the token came as a value (RAY_AUTH_TOKEN): a copy, so that a path is printed.
TOKEN_FILE = "ray_auth_token"  # noqa: S105 - a file name, not a password
LOOPBACK_SWITCH = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # actors.ray_env.keep_ray_on_loopback


@dataclass(frozen=True)
class Attach:
    """How to reach one running Ray cluster."""

    address: str  # the GCS, host:port
    namespace: str
    token_path: Path | None  # None: token authentication is off
    loopback: bool

    def env(self) -> dict[str, str]:
        # MATCHDAY_NAMESPACE: the `matchday` CLI in that shell finds the same actors.
        env = {"RAY_ADDRESS": self.address, "MATCHDAY_NAMESPACE": self.namespace}
        if self.token_path is None:
            env["RAY_AUTH_MODE"] = "disabled"
        else:
            env["RAY_AUTH_MODE"] = "token"
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        if self.loopback:
            env[LOOPBACK_SWITCH] = "0"
        return env

    def script(self, *, inline_token: bool = False) -> str:
        """Shell lines to ``eval`` or ``source``."""
        env = self.env()
        if inline_token and self.token_path is not None:
            del env["RAY_AUTH_TOKEN_PATH"]
            env["RAY_AUTH_TOKEN"] = self.token_path.read_text().strip()
        lines = [
            "# matchday's Ray cluster (written by `matchday run`). Then: `ray status`, or\n",
            f'# ray.init(address="auto", namespace={self.namespace!r}) in Python.\n',
        ]
        if self.loopback:
            lines.append(
                f"# {LOOPBACK_SWITCH}=0: Ray is on 127.0.0.1 (ADR 0004); without it Ray dials\n"
                "# this machine's own address instead, where nothing listens, and waits.\n"
            )
        lines += [f"export {name}={shlex.quote(value)}\n" for name, value in env.items()]
        return "".join(lines)


def token_path(data_dir: Path, environ: dict[str, str] | None = None) -> Path | None:
    """The file holding the token this process's Ray uses, or None when auth is off.

    Follows Ray's own order. A token given as a value (``RAY_AUTH_TOKEN``) is copied into
    a 0600 file in the data directory, so that what is printed is a path, never the token."""
    env = dict(os.environ if environ is None else environ)
    if env.get("RAY_AUTH_MODE", "token").lower() != "token":
        return None
    if env.get("RAY_AUTH_TOKEN"):
        return write_private(data_dir / TOKEN_FILE, env["RAY_AUTH_TOKEN"].strip() + "\n")
    if env.get("RAY_AUTH_TOKEN_PATH"):
        return Path(env["RAY_AUTH_TOKEN_PATH"]).resolve()
    return Path.home() / ".ray" / "auth_token"  # Ray's own default


def tighten(path: Path) -> None:
    """Make a token file of ours readable by us only (Ray creates its default one 0644)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) & 0o077:
        path.chmod(0o600)


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable and writable by this user only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode on open
        f.write(text)
    return path


def publish(settings: Settings, gcs_address: str) -> tuple[Path, Attach]:
    """Write ``<data_dir>/ray.env`` for the cluster this process runs; (its path, what it says).

    Call after ``ray.init()``: it creates Ray's default token file if there was none."""
    data_dir = settings.data_dir.resolve()
    token = token_path(data_dir)
    if token is not None:
        tighten(token)
    attach = Attach(
        address=gcs_address,
        namespace=settings.namespace,
        token_path=token,
        # What Ray did, not what was asked: the switch only works before Ray is imported.
        loopback=_is_loopback(gcs_address),
    )
    return write_private(data_dir / ENV_FILE, attach.script()), attach


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def forget(settings: Settings) -> None:
    """The stack stopped: its address means nothing now."""
    data_dir = settings.data_dir.resolve()
    for name in (ENV_FILE, TOKEN_FILE):
        (data_dir / name).unlink(missing_ok=True)


def load(settings: Settings) -> Attach:
    """What the running stack published (SystemExit with a clear message otherwise)."""
    path = settings.data_dir.resolve() / ENV_FILE
    if not path.exists():
        raise SystemExit(f"no {path}: start the stack with `matchday run` first")
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export ") :].partition("=")
            env[name] = "".join(shlex.split(value))
    return Attach(
        address=env["RAY_ADDRESS"],
        namespace=env["MATCHDAY_NAMESPACE"],
        token_path=Path(env["RAY_AUTH_TOKEN_PATH"]) if "RAY_AUTH_TOKEN_PATH" in env else None,
        loopback=env.get(LOOPBACK_SWITCH) == "0",
    )


def cmd_env(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.ops.stack_state import load_state

    state = load_state(settings)
    if not state or not psutil.pid_exists(int(state["pid"])):
        print("no running stack (start one with `matchday run`)", file=sys.stderr)
        return 1
    print(load(settings).script(inline_token=args.inline_token), end="")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    env = sub.add_parser(
        "env",
        help='export lines that attach a shell to the stack\'s Ray: eval "$(matchday env)"',
    )
    env.add_argument(
        "--inline-token",
        action="store_true",
        help="put the token itself in RAY_AUTH_TOKEN (for a shell on another machine)",
    )
    env.set_defaults(fn=cmd_env)
