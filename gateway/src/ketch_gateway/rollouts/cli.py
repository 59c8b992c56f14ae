"""``ketch rollout status|start|pause|resume|abort``: steer rollouts on a running gateway.

It calls the gateway's admin API at ``--url`` with the admin token (``--token``, or the
``KETCH_ADMIN_TOKEN`` variable) and prints the model's routing as JSON: its version,
split, shadow and rollout with their feedback counts. An error from the gateway is
printed as the gateway said it, and the exit status is 1 (2 for a bad command line).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any, Final

__all__ = ["add_command", "run_rollout"]

TIMEOUT_S: Final = 30.0
ACTIONS: Final = ("status", "start", "pause", "resume", "abort")


def add_command(commands: Any) -> None:
    """Add ``rollout`` to the ``ketch`` command's sub-commands."""
    parser = commands.add_parser(
        "rollout",
        help="see and steer a model's rollout on a running gateway (admin API)",
        description=__doc__,
    )
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("model", nargs="?", help="the model (status without one: every model)")
    parser.add_argument("--url", required=True, help="the gateway, such as http://127.0.0.1:8080")
    parser.add_argument("--token", help="the admin token (default: $KETCH_ADMIN_TOKEN)")
    start = parser.add_argument_group("start")
    start.add_argument("--to", help="the version to roll out")
    start.add_argument("--steps", help="the canary's share at each step: 0.05,0.25,0.5,1.0")
    start.add_argument("--min-feedback", type=int)
    start.add_argument("--max-error-increase", type=float)
    start.add_argument("--max-p99-ms", type=float)
    start.add_argument("--step-every-s", type=float)
    start.add_argument("--confidence", type=float)
    parser.add_argument("--reason", help="abort: why (shown in the status and the log)")
    parser.set_defaults(handler=run_rollout)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"to": args.to}
    if args.steps:
        settings["steps"] = [float(share) for share in args.steps.split(",")]
    for key in ("min_feedback", "max_error_increase", "max_p99_ms", "step_every_s", "confidence"):
        value = getattr(args, key)
        if value is not None:
            settings[key] = value
    return settings


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """The method, path and body of the admin call for the action."""
    model = args.model
    if args.action == "status":
        path = f"/admin/models/{model}/rollout" if model else "/admin/rollouts"
        return "GET", path, None
    base = f"/admin/models/{model}/rollout"
    if args.action == "start":
        return "POST", base, _settings(args)
    if args.action == "abort":
        return "POST", base + "/abort", {"reason": args.reason} if args.reason else {}
    return "POST", f"{base}/{args.action}", None


def run_rollout(args: argparse.Namespace) -> int:
    """Make the admin call; print its answer; the exit status."""
    if args.action != "status" and not args.model:
        print(f"ketch rollout {args.action}: name the model", file=sys.stderr)
        return 2
    if args.action == "start" and not args.to:
        print("ketch rollout start: --to VERSION is required", file=sys.stderr)
        return 2
    token = args.token or os.environ.get("KETCH_ADMIN_TOKEN", "")
    method, path, body = _request(args)
    request = urllib.request.Request(
        args.url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")
        with contextlib.suppress(ValueError, KeyError, TypeError):
            text = json.loads(text)["error"]
        print(f"ketch rollout {args.action}: {error.code}: {text}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"ketch rollout {args.action}: cannot reach {args.url}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(answer, indent=2))
    return 0
