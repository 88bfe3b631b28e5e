"""The `ai-gateway` command: `start` runs gunicorn with gevent workers, `validate` checks a config."""
from __future__ import annotations

import argparse
import os
import sys

from app import CONFIG_ENV_VARS, resolve_config_path
from app import config as config_mod
from app import limits_settings
from app.errors import ConfigError


def _config_path(value: str | None) -> str:
    try:
        return os.path.abspath(resolve_config_path(value))
    except ConfigError as exc:
        sys.exit(f"ai-gateway: {exc}")


def _check(path: str) -> int:
    try:
        endpoints = config_mod.load(path)
    except ConfigError as exc:
        print(f"{path}: invalid config ({len(exc.problems)} problem(s)):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"{path}: OK, {len(endpoints)} endpoint(s): " + ", ".join(e.name for e in endpoints))
    return 0


def no_control_socket() -> list[str]:
    """gunicorn 24+ opens a control socket at one fixed path; two instances on a host would clash."""
    import gunicorn.config

    names = {s.name for s in gunicorn.config.KNOWN_SETTINGS}
    return ["--no-control-socket"] if "control_socket_disable" in names else []


def gunicorn_argv(args: argparse.Namespace, path: str) -> list[str]:
    """The gunicorn command line for `start` (gevent workers, graceful drain on SIGTERM)."""
    return [
        sys.executable, "-m", "gunicorn",
        "--worker-class", "gevent",
        "--workers", str(args.workers),
        "--worker-connections", str(args.worker_connections),
        "--bind", f"{args.host}:{args.port}",
        "--graceful-timeout", str(args.graceful_timeout),
        "--keep-alive", "75",
        "--log-level", args.log_level,
        *no_control_socket(),
        "app:create_app()",
    ]


def _start(args: argparse.Namespace) -> int:
    path = _config_path(args.config_path)
    if _check(path):
        return 1
    env = dict(os.environ, AI_GATEWAY_CONFIG=path, AI_GATEWAY_POOL_SIZE=str(args.worker_connections))
    if args.max_body_bytes:
        env["AI_GATEWAY_MAX_BODY_BYTES"] = str(args.max_body_bytes)
    for name, value in (("limits_storage_uri", args.limits_storage),
                        ("limits_on_storage_error", args.limits_on_storage_error),
                        ("trusted_proxy_hops", args.trusted_proxy_hops)):
        if value is not None:
            try:
                env[limits_settings.ENV[name]] = str(limits_settings.check(name, value))
            except ValueError as exc:
                sys.exit(f"ai-gateway: --{name.replace('_', '-')}: {exc}")
    argv = gunicorn_argv(args, path)
    sys.stdout.flush()
    os.execve(argv[0], argv, env)
    return 0  # not reached


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    where = f"(default: ${' / $'.join(CONFIG_ENV_VARS)})"

    start = sub.add_parser("start", help="run the gateway with gunicorn and gevent workers")
    start.add_argument("--config-path", help=f"gateway YAML file {where}")
    start.add_argument("--host", default="localhost")
    start.add_argument("--port", type=int, default=5000)
    start.add_argument("--workers", type=int, default=2)
    start.add_argument("--worker-connections", type=int, default=1000,
                       help="concurrent requests per gevent worker (default 1000)")
    start.add_argument("--graceful-timeout", type=int, default=30,
                       help="seconds in-flight requests get to finish after SIGTERM (default 30)")
    start.add_argument("--max-body-bytes", type=int, help="largest request body (default 10 MiB)")
    start.add_argument("--limits-storage", metavar="URI",
                       help="rate-limit store shared by several instances: redis://, "
                            "redis+sentinel://, redis+cluster:// (default: $AI_GATEWAY_LIMITS_STORAGE, "
                            "else settings.limits_storage_uri, else a store shared by this host's workers)")
    start.add_argument("--limits-on-storage-error", choices=limits_settings.POLICIES,
                       help="when the store is unreachable: open (admit, log a warning; default) "
                            "or closed (answer 503)")
    start.add_argument("--trusted-proxy-hops", type=int, metavar="N",
                       help="proxies in front of the gateway whose X-Forwarded-For is trusted "
                            "for per-IP limits (default 0)")
    start.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    start.set_defaults(func=_start)

    validate = sub.add_parser("validate", help="check a config file and list its problems")
    validate.add_argument("--config-path", help=f"gateway YAML file {where}")
    validate.set_defaults(func=lambda a: _check(_config_path(a.config_path)))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
