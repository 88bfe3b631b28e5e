"""An AWS eventstream frame encoder (WIRE-FORMATS 1.4) for fake Bedrock streams."""
from __future__ import annotations

import base64
import json
import struct
import zlib
from typing import Any

STRING = 7  # header value type: 2-byte length + UTF-8


def _crc(data: bytes) -> bytes:
    return struct.pack(">I", zlib.crc32(data) & 0xFFFFFFFF)


def encode_headers(headers: dict[str, str]) -> bytes:
    """Each header: 1-byte name length, name, 1-byte type (7 = string), 2-byte length, value."""
    out = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += bytes([len(raw_name)]) + raw_name + bytes([STRING]) + struct.pack(">H", len(raw_value)) + raw_value
    return out


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """Prelude (total length, headers length, prelude CRC), headers, payload, message CRC."""
    raw_headers = encode_headers(headers)
    prelude = struct.pack(">II", 16 + len(raw_headers) + len(payload), len(raw_headers))
    message = prelude + _crc(prelude) + raw_headers + payload
    return message + _crc(message)


def event(event_type: str, payload: Any) -> bytes:
    """A normal event: ConverseStream events carry their JSON body as the payload."""
    return frame(
        {":message-type": "event", ":event-type": event_type, ":content-type": "application/json"},
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def chunk(model_json: Any) -> bytes:
    """An InvokeModelWithResponseStream `chunk` event: `{"bytes": "<base64 of model JSON>"}`."""
    raw = model_json if isinstance(model_json, bytes) else json.dumps(model_json).encode()
    return event("chunk", {"bytes": base64.b64encode(raw).decode()})


def exception(exception_type: str, message: str, **extra: Any) -> bytes:
    """A modeled in-stream exception, e.g. `throttlingException`, payload `{"message": ...}`."""
    return frame(
        {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"},
        json.dumps({"message": message, **extra}).encode(),
    )
