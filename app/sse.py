"""Server-sent event framing of unified chunks, ending in `[DONE]` or a final error event."""
from __future__ import annotations

import json
import logging
from typing import Callable, Iterable, Iterator

from app.errors import GatewayError

log = logging.getLogger("ai_gateway")

DONE = b"data: [DONE]\n\n"
# Headers that stop Nginx and other proxies from buffering the stream, set before the first byte.
STREAM_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def frame(chunk: dict | str) -> bytes:
    data = chunk if isinstance(chunk, str) else _dumps(chunk)
    return b"data: " + data.encode() + b"\n\n"


def error_frame(body: dict) -> bytes:
    return b"data: " + _dumps(body).encode() + b"\n\n"


def stream(
    chunks: Iterable[dict | str], error_body: Callable[[GatewayError], dict],
) -> Iterator[bytes]:
    """Frame chunks; a failure after the first byte becomes an error event instead of [DONE].

    Closing this generator (the client hung up) closes `chunks`, whose `finally` blocks release
    the upstream connection at once.
    """
    try:
        for chunk in chunks:
            yield frame(chunk)
    except GatewayError as exc:
        log.warning("Stream ended by an upstream error: %s", exc.message)
        yield error_frame(error_body(exc))
        return
    except Exception:
        log.exception("Stream failed")
        yield error_frame(error_body(GatewayError("The stream failed inside the gateway.")))
        return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    yield DONE
