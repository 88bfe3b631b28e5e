"""CPU per non-streaming chat call inside one gevent-patched process (the hot path, no gunicorn).

`python -m bench.percall [--rounds 7] [--requests 1000] [--stream CHUNKS]` starts the fake
upstream, builds the app on one `openai` endpoint pointed at it, and calls the WSGI app directly
with a prepared environ, as a gunicorn gevent worker would after parsing the request. With
`--stream N` each call is a stream of N chunks (sent back to back) and the figure is per chunk. It prints the least
(and the median) process CPU time per call over the rounds, and Python function calls per
call (deterministic: the figure to compare when the machine is noisy). Run it from the
checkout to measure; alternate two checkouts for a before/after.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.targets import start_upstream  # noqa: E402

REQUEST = {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--stream", type=int, default=0, metavar="CHUNKS",
                        help="stream calls of this many chunks; report CPU per chunk")
    args = parser.parse_args()
    payload = json.dumps({**REQUEST, "stream": True} if args.stream else REQUEST).encode()
    model = f"fake-d0-c{args.stream}-i0" if args.stream else "fake-d0-c5-i0"
    unit = "chunk" if args.stream else "call"
    per = max(args.stream, 1)
    upstream, url = start_upstream()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "gateway.yaml"
            config.write_text(
                "endpoints:\n- name: fast\n  endpoint_type: llm/v1/chat\n"
                f"  model: {{provider: openai, name: {model}, config: "
                f"{{openai_api_key: bench-not-a-key, openai_api_base: '{url}/v1'}}}}\n")
            from werkzeug.test import EnvironBuilder

            from app import create_app

            app = create_app(str(config), settings={"AI_GATEWAY_WATCH": False})
            base = EnvironBuilder(path="/endpoints/fast/invocations", method="POST", data=payload,
                                  content_type="application/json").get_environ()
            statuses: list[str] = []

            def call(n: int) -> None:
                for _ in range(n):
                    environ = dict(base, **{"wsgi.input": io.BytesIO(payload)})
                    body = app(environ, lambda status, headers, exc_info=None: statuses.append(status))
                    b"".join(body)
                    body.close()
                    if not statuses.pop().startswith("200"):
                        raise SystemExit("the gateway did not answer 200")

            call(200)  # warm-up: the pool holds its connection
            per_call = []
            for _ in range(args.rounds):
                start = time.process_time()
                call(args.requests)
                per_call.append((time.process_time() - start) / args.requests / per * 1e6)
            profile = cProfile.Profile()
            profile.enable()
            call(200)
            profile.disable()
            calls = pstats.Stats(profile).total_calls / 200 / per
    finally:
        upstream.stop()
    per_call.sort()
    print(f"CPU per {unit}: least {per_call[0]:.1f} us, median {per_call[len(per_call) // 2]:.1f} us "
          f"({args.rounds} x {args.requests}); Python calls per {unit}: {calls:.0f}")


if __name__ == "__main__":
    main()
