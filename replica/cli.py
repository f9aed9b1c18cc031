"""`python -m replica up|down|status|fix|fault|rollout|logs|scenarios`: the replica from a terminal."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from replica import scenarios
from replica.cloud_logging import FILE_NAME as CLOUD_LOGGING_FILE
from replica.cloud_logging import parse_since, read_entries
from replica.config import PROFILES
from replica.handle import DEFAULT_RUN_DIR, ReplicaError, ReplicaHandle
from replica.state import read_state


def _print_urls(handle: ReplicaHandle) -> None:
    print(f"scenario:    {handle.state['scenario']}")
    print(f"backend:     {handle.backend_url}")
    print(f"auth:        {handle.auth_url}")
    print(f"websocket:   {handle.ws_url}")
    print(f"control:     {handle.state['control_url']}")
    print(f"instances:   {handle.state.get('backend_instances', 1)} (profile {handle.state.get('profile')})")
    print(f"logs:        {handle.cloud_logging_path} (python -m replica logs)")
    print(f"state file:  {handle.run_dir / 'state.json'} (holds the local bypass key, mode 0600)")


def cmd_up(args: argparse.Namespace) -> int:
    overrides = dict(kv.split("=", 1) for kv in args.set or [])
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    if args.foreground:  # a Ctrl-C while starting waits for sigwait below, so nothing is orphaned
        signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    handle = ReplicaHandle.start(
        args.scenario,
        args.run_dir,
        overrides=overrides or None,
        instances=args.instances,
        profile=args.profile,
    )
    _print_urls(handle)
    if not args.foreground:
        print("stop it with: python -m replica down")
        return 0
    print("running in the foreground; Ctrl-C stops everything")
    try:
        signal.sigwait(stop_signals)
    finally:
        handle.stop()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    try:
        handle = ReplicaHandle.attach(args.run_dir)
    except ReplicaError as exc:
        print(exc)
        return 0
    handle.stop()
    print("replica stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(ReplicaHandle.attach(args.run_dir).status(), indent=2))
    return 0


def cmd_fix(args: argparse.Namespace) -> int:
    status = ReplicaHandle.attach(args.run_dir).fix(rollout_startups=args.rollout_startups)
    print(f"faults cleared: {json.dumps(status['faults'])}")
    if args.rollout_startups:
        print(f"rolling out new revisions until {args.rollout_startups} startups have finished (see status)")
    return 0


def cmd_fault(args: argparse.Namespace) -> int:
    outage = None if args.gateway_outage is None else args.gateway_outage == "on"
    status = ReplicaHandle.attach(args.run_dir).set_fault(args.db, args.gateway_error_rate, outage)
    print(f"faults now: {json.dumps(status['faults'])}")
    return 0


def cmd_rollout(args: argparse.Namespace) -> int:
    """A new revision, every backend instance replaced one at a time; waits until it is done."""
    handle = ReplicaHandle.attach(args.run_dir)
    service = dict(kv.split("=", 1) for kv in args.set or [])
    revision = handle.rollout(service)["revision"]
    print(f"rolling out {revision}")
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        record = next(r for r in handle.status()["backend"]["rollouts"] if r["revision"] == revision)
        if record["state"] not in ("pending", "rolling"):
            print(
                f"rollout of {revision}: {record['state']}"
                + (f" ({record['error']})" if record["error"] else "")
            )
            return 0 if record["state"] == "done" else 1
        time.sleep(0.2)
    print(f"rollout of {revision} still running after {args.timeout:g}s (see status)")
    return 1


def cmd_logs(args: argparse.Namespace) -> int:
    """The backend's Cloud Logging entries (newest first), also after the replica stopped."""
    state = read_state(args.run_dir) or {}
    path = Path(state.get("cloud_logging_path") or args.run_dir / CLOUD_LOGGING_FILE)
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError:
        raise ReplicaError(f"--since {args.since!r} is not an ISO time (e.g. 2026-01-31T12:00:00Z)") from None
    print(json.dumps(read_entries(path, since), indent=2, ensure_ascii=False))
    return 0


def cmd_scenarios(_: argparse.Namespace) -> int:
    for scenario in scenarios.SCENARIOS.values():
        print(f"{scenario.name:16} {scenario.summary}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m replica", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the replica and print its URLs")
    up.add_argument("--scenario", default="healthy", choices=sorted(scenarios.SCENARIOS))
    up.add_argument("--foreground", action="store_true", help="stay attached; Ctrl-C stops everything")
    up.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a service knob")
    up.add_argument("--instances", type=int, help="backend instances (default: the scenario's)")
    up.add_argument("--profile", choices=PROFILES, help="protocol era (wins over the scenario)")
    up.set_defaults(func=cmd_up)
    sub.add_parser("down", help="stop everything the replica started").set_defaults(func=cmd_down)
    sub.add_parser("status", help="processes, restarts, exit codes, faults").set_defaults(func=cmd_status)
    fix = sub.add_parser("fix", help="clear the infrastructure faults (the fix)")
    fix.add_argument(
        "--rollout-startups",
        type=int,
        default=0,
        metavar="N",
        help="then roll out until N startups have finished",
    )
    fix.set_defaults(func=cmd_fix)
    fault = sub.add_parser("fault", help="set faults at runtime")
    fault.add_argument("--db", help="none | hang | refuse | reset | latency:MS")
    fault.add_argument("--gateway-error-rate", type=float, help="share of backend requests answered 503 HTML")
    fault.add_argument(
        "--gateway-outage", choices=("on", "off"), help="every backend request answered 503 HTML"
    )
    fault.set_defaults(func=cmd_fault)
    rollout = sub.add_parser("rollout", help="roll out a new backend revision, one instance at a time")
    rollout.add_argument("--set", action="append", metavar="KEY=VALUE", help="the new build's service knob")
    rollout.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it to finish")
    rollout.set_defaults(func=cmd_rollout)
    logs = sub.add_parser("logs", help="the backend's Cloud Logging entries, as gcloud prints them")
    logs.add_argument("--since", metavar="ISO", help="only entries at or after this time")
    logs.set_defaults(func=cmd_logs)
    sub.add_parser("scenarios", help="list the scenarios").set_defaults(func=cmd_scenarios)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ReplicaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
