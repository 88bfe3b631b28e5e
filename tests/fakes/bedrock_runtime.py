"""A local fake of the bedrock-runtime REST API (and STS AssumeRole) for live and transport tests.

It checks what a real endpoint would refuse first (a well-formed SigV4 `Authorization` header with
the `bedrock` signing name), then answers like Bedrock: JSON bodies with the token-count headers,
streams in AWS eventstream framing, errors as `{"message"}` with `x-amzn-ErrorType`.
By default it echoes the last user text; tests replace behaviour with `script`.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.fakes import eventstream as es
from tests.live import FakeUpstream, Reply, Seen

PATH = re.compile(r"^/model/(?P<model>[^/]+)/(?P<op>converse|converse-stream|invoke|invoke-with-response-stream)$")
AUTH = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<akid>[A-Z0-9]{16,128})/(?P<date>\d{8})/(?P<region>[a-z0-9-]+)/"
    r"(?P<service>[a-z0-9-]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=(?P<signature>[0-9a-f]{64})$"
)
STREAM_TYPE = "application/vnd.amazon.eventstream"


@dataclass
class Call:
    """One request the fake accepted."""

    op: str
    model: str
    body: Any
    headers: dict[str, str]
    akid: str
    region: str
    at: float = field(default_factory=time.monotonic)


def error(status: int, code: str, message: str) -> Reply:
    """Bedrock's error envelope: `{"message": ...}` plus the `x-amzn-ErrorType` header."""
    return Reply(status, {"message": message}, {
        "x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": str(uuid.uuid4()), "Content-Type": "application/json",
    })


def invoke_reply(body: Any, input_tokens: int, output_tokens: int) -> Reply:
    return Reply(200, body, {
        "Content-Type": "application/json", "x-amzn-RequestId": str(uuid.uuid4()),
        "X-Amzn-Bedrock-Input-Token-Count": str(input_tokens),
        "X-Amzn-Bedrock-Output-Token-Count": str(output_tokens),
        "X-Amzn-Bedrock-Invocation-Latency": "42",
    })


def stream_reply(frames: list[bytes], interval: float = 0.0) -> Reply:
    return Reply(200, headers={"Content-Type": STREAM_TYPE, "X-Amzn-Bedrock-Content-Type": "application/json",
                               "x-amzn-RequestId": str(uuid.uuid4())}, chunks=frames, chunk_interval=interval)


def metrics(input_tokens: int, output_tokens: int) -> dict:
    return {"amazon-bedrock-invocationMetrics": {
        "inputTokenCount": input_tokens, "outputTokenCount": output_tokens,
        "invocationLatency": 250, "firstByteLatency": 120}}


def vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 4) for b in digest[:dims]]


def _last_user_text(messages: list[dict]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return " ".join(b["text"] for b in message.get("content", []) if "text" in b)
    return ""


def default_answer(call: Call) -> Reply:
    """Echo behaviour: Converse answers `You said: <text>`; InvokeModel per model family."""
    body = call.body
    if call.op in ("converse", "converse-stream"):
        text = f"You said: {_last_user_text(body['messages'])}"
        words, n_in = text.split(" "), len(_last_user_text(body["messages"]).split())
        usage = {"inputTokens": n_in, "outputTokens": len(words), "totalTokens": n_in + len(words)}
        if call.op == "converse":
            return Reply(200, {"output": {"message": {"role": "assistant", "content": [{"text": text}]}},
                               "stopReason": "end_turn", "usage": usage, "metrics": {"latencyMs": 12}})
        frames = [es.event("messageStart", {"role": "assistant"})]
        # Real streams pad some events with a random "p" field (WIRE-FORMATS 1.4); clients ignore it.
        frames += [es.event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": w if i == 0 else " " + w},
                                                  "p": "abcdefghij"[: i + 1]})
                   for i, w in enumerate(words)]
        frames += [es.event("contentBlockStop", {"contentBlockIndex": 0}),
                   es.event("messageStop", {"stopReason": "end_turn"}),
                   es.event("metadata", {"usage": usage, "metrics": {"latencyMs": 30}})]
        return stream_reply(frames)
    model = call.model.split(".", 1)[1] if call.model.split(".")[0] in ("us", "eu", "apac") else call.model
    if model.startswith("amazon.titan-embed"):
        return invoke_reply({"embedding": vector(body["inputText"]), "inputTextTokenCount": len(body["inputText"].split())},
                            len(body["inputText"].split()), 0)
    if model.startswith("cohere.embed"):
        count = sum(len(t.split()) for t in body["texts"])
        return invoke_reply({"id": str(uuid.uuid4()), "embeddings": [vector(t) for t in body["texts"]],
                             "texts": body["texts"], "response_type": "embeddings_floats"}, count, 0)
    if model.startswith("meta.llama"):
        words = ["Echo:", *body["prompt"].split()][: body.get("max_gen_len", 512)]
        n_in = len(body["prompt"].split())
        if call.op == "invoke":
            return invoke_reply({"generation": " ".join(words), "prompt_token_count": n_in,
                                 "generation_token_count": len(words), "stop_reason": "stop"}, n_in, len(words))
        frames = [es.chunk({"generation": (" " if i else "") + w, "prompt_token_count": n_in if i == 0 else None,
                            "generation_token_count": i + 1, "stop_reason": None}) for i, w in enumerate(words)]
        frames.append(es.chunk({"generation": "", "prompt_token_count": None, "generation_token_count": len(words),
                                "stop_reason": "stop", **metrics(n_in, len(words))}))
        return stream_reply(frames)
    return error(400, "ValidationException", f"The fake has no default answer for {call.model} {call.op}.")


# ----- STS (query protocol, XML) ------------------------------------------------------------------


def sts_credentials(akid: str, lifetime: int) -> Reply:
    expiry = (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=lifetime))
    xml = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>{akid}</AccessKeyId>
      <SecretAccessKey>fakeSecret{akid}</SecretAccessKey>
      <SessionToken>fakeToken{akid}</SessionToken>
      <Expiration>{expiry.strftime('%Y-%m-%dT%H:%M:%SZ')}</Expiration>
    </Credentials>
    <AssumedRoleUser><AssumedRoleId>AROAFAKE:gateway</AssumedRoleId>
      <Arn>arn:aws:sts::123456789012:assumed-role/fake/gateway</Arn></AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
    return Reply(200, xml.encode(), {"Content-Type": "text/xml"})


def sts_error(status: int, code: str, message: str) -> Reply:
    xml = (f'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
           f"<Code>{code}</Code><Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
           "</ErrorResponse>")
    return Reply(status, xml.encode(), {"Content-Type": "text/xml"})


def signature(seen: Seen, auth: re.Match, secret: str) -> str:
    """Recompute the SigV4 signature over what was received (path, signed headers, body)."""
    signed = auth["signed"].split(";")
    headers = {k: v for k, v in seen.headers.items() if k.lower() in signed}
    host = next(v for k, v in seen.headers.items() if k.lower() == "host")
    request = AWSRequest(method=seen.method, url=f"http://{host}{seen.path}", data=seen.body, headers=headers)
    request.context["timestamp"] = next(v for k, v in seen.headers.items() if k.lower() == "x-amz-date")
    signer = SigV4Auth(Credentials(auth["akid"], secret), auth["service"], auth["region"])
    return signer.signature(signer.string_to_sign(request, signer.canonical_request(request)), request)


class BedrockRuntimeFake:
    """`with BedrockRuntimeFake() as fake:` then point `aws_config.endpoint_url` at `fake.url`."""

    def __init__(self, script: Callable[[Call], Reply | None] | None = None, *, delay: float = 0.0,
                 sts: Callable[[dict], Reply] | None = None, keys: dict[str, str] | None = None) -> None:
        # keys: access key id -> secret. When given, signatures are verified and unknown keys are
        # refused like AWS does; credentials the fake STS issues are added to it.
        self.keys = keys
        self.script = script
        self.delay = delay
        self.sts = sts or (lambda form: sts_credentials("ASIAFAKEROLE0000001", 3600))
        self.calls: list[Call] = []
        self.sts_calls: list[dict] = []
        self.refused: list[str] = []
        self.server = FakeUpstream(self._handle)
        self.url = self.server.url

    def __enter__(self) -> "BedrockRuntimeFake":
        # socketserver listens with a backlog of 5; concurrency tests open dozens of connections
        # at once, and the kernel would drop the overflow's SYNs (clients retry after 1-3 s).
        self.server.server.socket.listen(256)
        # Clients that time out on purpose hang up before a reply is written; that is expected here.
        self.server.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.server.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.__exit__(*exc)

    def _auth_problem(self, seen: Seen, service: str) -> tuple[str, str] | None:
        headers = {k.lower(): v for k, v in seen.headers.items()}
        auth = headers.get("authorization")
        if not auth:
            return "MissingAuthenticationTokenException", "Missing Authentication Token"
        match = AUTH.match(auth)
        if not match:
            return "IncompleteSignatureException", "Authorization header is not a SigV4 header."
        if match["service"] != service:
            return "InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'."
        signed = match["signed"].split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return "IncompleteSignatureException", "SignedHeaders must include host and x-amz-date."
        if not headers.get("x-amz-date", "").startswith(match["date"]):
            return "IncompleteSignatureException", "Date in Credential scope does not match X-Amz-Date."
        if "x-amz-security-token" in headers and "x-amz-security-token" not in signed:
            return "IncompleteSignatureException", "x-amz-security-token must be signed."
        if self.keys is not None:
            if match["akid"] not in self.keys:
                return "UnrecognizedClientException", "The security token included in the request is invalid."
            if signature(seen, match, self.keys[match["akid"]]) != match["signature"]:
                return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided."
        return None

    def _handle(self, seen: Seen) -> Reply:
        if seen.path == "/" and seen.method == "POST":  # STS query API
            problem = self._auth_problem(seen, "sts")
            if problem:
                return sts_error(403, *problem)
            form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
            self.sts_calls.append(form)
            reply = self.sts(form)
            issued = re.search(rb"<AccessKeyId>(\w+)</AccessKeyId>\s*<SecretAccessKey>(\w+)<", reply.body or b"")
            if issued and self.keys is not None:
                self.keys[issued[1].decode()] = issued[2].decode()
            return reply
        match = PATH.match(seen.path)
        if not match or seen.method != "POST":
            return error(404, "UnknownOperationException", "Unknown operation")
        problem = self._auth_problem(seen, "bedrock")
        if problem:
            self.refused.append(problem[0])
            return error(403, *problem)
        try:
            body = json.loads(seen.body)
        except ValueError:
            return error(400, "ValidationException", "Malformed input request, please reformat your input and try again.")
        auth = AUTH.match(seen.headers.get("Authorization") or seen.headers.get("authorization"))
        call = Call(match["op"], unquote(match["model"]), body, seen.headers, auth["akid"], auth["region"])
        self.calls.append(call)
        if self.delay:
            time.sleep(self.delay)
        reply = self.script(call) if self.script else None
        return reply if reply is not None else default_answer(call)
