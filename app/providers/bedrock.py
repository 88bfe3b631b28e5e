"""Amazon Bedrock through boto3: Converse chat, InvokeModel completions per family, embeddings."""
from __future__ import annotations

import contextlib
import json
import os
from typing import Any, Iterator, Mapping

import urllib3.exceptions
from botocore.config import Config
from botocore.eventstream import ParserError
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from marshmallow import ValidationError, fields, post_load, pre_load, validate, validates_schema

from app.config_fields import Secret, Text
from app.errors import GatewayError, InvalidRequest, UpstreamError, UpstreamTimeout
from app.http import DEFAULT_POOL_SIZE
from app.providers import bedrock_converse as converse
from app.providers import bedrock_embeddings as embeddings
from app.providers import bedrock_families as families
from app.providers import bedrock_native as native
from app.providers.base import (
    CHAT, COMPLETIONS, EMBEDDINGS, BaseProvider, Chunk, ProviderConfig, map_status,
)
from app.providers.bedrock_auth import build_session
from app.schemas import shapes

_URL = validate.URL(require_tld=False, schemes={"http", "https"})
# Bedrock error codes (bedrock-runtime service-2.json; in-stream frames use lowerCamel names)
# → gateway status. Everything not listed is a 502.
STATUS = {
    "throttlingexception": 429,
    "validationexception": 400,
    "accessdeniedexception": 403,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 504,
    "serviceunavailableexception": 503,
    "modelnotreadyexception": 503,
}


class AWSConfig(ProviderConfig):
    """`model.config.aws_config`: keys, a role to assume, or nothing (boto3's default chain)."""

    aws_region = Text()
    aws_access_key_id = Secret()
    aws_secret_access_key = Secret()
    aws_session_token = Secret()
    aws_role_arn = Text(validate=validate.Regexp(r"^arn:aws[a-z-]*:iam::\d{12}:role/\S+$",
                                                 error="Must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)."))
    session_length_seconds = fields.Integer(strict=True, validate=validate.Range(900, 43200))
    endpoint_url = Text(validate=_URL)
    sts_endpoint_url = Text(validate=_URL)

    @validates_schema
    def _pairs(self, data: Mapping[str, Any], **kwargs: Any) -> None:
        if bool(data.get("aws_access_key_id")) != bool(data.get("aws_secret_access_key")):
            missing = "aws_secret_access_key" if data.get("aws_access_key_id") else "aws_access_key_id"
            raise ValidationError("Required with the other half of the key pair.", missing)
        if data.get("aws_session_token") and not data.get("aws_access_key_id"):
            raise ValidationError("Only allowed with aws_access_key_id.", "aws_session_token")
        if "session_length_seconds" in data and not data.get("aws_role_arn"):
            raise ValidationError("Only allowed with aws_role_arn.", "session_length_seconds")
        if data.get("sts_endpoint_url") and not data.get("aws_role_arn"):
            raise ValidationError("Only allowed with aws_role_arn.", "sts_endpoint_url")

    @post_load
    def _region(self, data: dict, **kwargs: Any) -> dict:
        region = data.get("aws_region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise ValidationError("Required: set it here or in AWS_REGION / AWS_DEFAULT_REGION.", "aws_region")
        data["aws_region"] = region
        return data


class BedrockConfig(ProviderConfig):
    aws_config = fields.Nested(AWSConfig)

    @pre_load
    def _empty(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and data.get("aws_config") is None:
            data = {**data, "aws_config": {}}
        return data


class BedrockProvider(BaseProvider):
    """One boto3 client per endpoint, reused by every request (its pool sized for gevent)."""

    name = "bedrock"
    display_name = "Amazon Bedrock"
    config_schema = BedrockConfig

    def __init__(self, *args: Any, sts_client: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        aws = self.config["aws_config"]
        self._secrets = [aws[k] for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token") if aws.get(k)]
        connect, read = self.timeout
        self.client = build_session(aws, sts_client).create_client(
            "bedrock-runtime",
            region_name=aws["aws_region"],
            endpoint_url=aws.get("endpoint_url"),
            config=Config(
                connect_timeout=connect, read_timeout=read, max_pool_connections=DEFAULT_POOL_SIZE,
                # One attempt: the gateway's client decides about retries, and a retry loop here
                # would hold a worker connection for a multiple of the endpoint's timeout.
                retries={"total_max_attempts": 1, "mode": "standard"},
                user_agent_extra="ai-gateway",
            ),
        )
        self.vendor = families.vendor(self.model)

    @classmethod
    def base_url(cls, config: Mapping[str, Any]) -> str:
        aws = config.get("aws_config") or {}
        return aws.get("endpoint_url") or f"https://bedrock-runtime.{aws.get('aws_region', 'us-east-1')}.amazonaws.com"

    @classmethod
    def check_model(cls, endpoint_type: str, model: str, config: Mapping[str, Any]) -> str | None:
        if endpoint_type == CHAT and embeddings.embedding_family(model):
            return f"{model} is an embedding model; it cannot chat."
        if endpoint_type == COMPLETIONS and families.completion_family(model) is None:
            return (f"unknown Bedrock model family for completions: {model} (supported: Anthropic, "
                    "Amazon Titan/Nova, Cohere Command, AI21, Meta Llama, Mistral).")
        if endpoint_type == EMBEDDINGS and embeddings.embedding_family(model) is None:
            return f"{model} is not a Bedrock embedding model (supported: amazon.titan-embed-*, cohere.embed-*)."
        return None

    # ----- errors --------------------------------------------------------------------------

    def client_error(self, exc: ClientError) -> GatewayError:
        """A botocore ClientError (HTTP error or in-stream exception frame) → gateway error."""
        err = exc.response.get("Error") or {}
        code = str(err.get("Code") or "UnknownError")
        detail = self.redact(f"{code}: {err.get('Message') or 'no message'}")
        status = STATUS.get(code.lower())
        if status is None:
            return UpstreamError(f"The {self._label()} provider failed: {detail}", code=code)
        return map_status(status, detail, self._label(), code=code)

    @contextlib.contextmanager
    def mapped(self) -> Iterator[None]:
        """Turn every botocore/urllib3 failure inside the block into a GatewayError (never a 500)."""
        label = self._label()
        try:
            yield
        except GatewayError:
            raise
        except ClientError as exc:
            raise self.client_error(exc) from None
        except (ReadTimeoutError, ConnectTimeoutError, urllib3.exceptions.ReadTimeoutError):
            raise UpstreamTimeout(f"The {label} provider did not answer in time.") from None
        except NoCredentialsError:
            raise UpstreamError(f"No AWS credentials were found for the {label} provider.") from None
        except ParamValidationError as exc:
            raise InvalidRequest(f"The {label} provider refused the request: {exc}") from None
        except (BotoCoreError, urllib3.exceptions.HTTPError, ParserError, OSError) as exc:
            raise UpstreamError(f"Could not talk to the {label} provider ({type(exc).__name__}).") from None

    # ----- transport -------------------------------------------------------------------------

    def read(self, parse: Any, body: Any) -> Any:
        """Apply a pure reply parser; a reply of an unexpected shape is an upstream error."""
        try:
            return parse(body)
        except (KeyError, TypeError, IndexError, AttributeError, ValueError):
            raise UpstreamError(f"The {self._label()} provider returned a reply of an unexpected shape.") from None

    def _json(self, raw: bytes) -> Any:
        try:
            return json.loads(raw)
        except ValueError:
            raise UpstreamError(f"The {self._label()} provider returned a body that is not JSON.") from None

    def invoke(self, body: dict) -> tuple[Any, dict]:
        """InvokeModel: (parsed model JSON, response headers)."""
        with self.mapped():
            reply = self.client.invoke_model(
                modelId=self.model, body=json.dumps(body).encode(),
                contentType="application/json", accept="application/json",
            )
            raw = reply["body"].read()
        return self._json(raw), reply["ResponseMetadata"].get("HTTPHeaders", {})

    def events(self, stream: Any) -> Iterator[dict]:
        """Events of a botocore EventStream, mapped errors, closed when done or abandoned."""
        try:
            with self.mapped():
                yield from stream
        finally:
            stream.close()

    def invoke_stream(self, body: dict) -> Iterator[Any]:
        """InvokeModelWithResponseStream: the decoded JSON of each `chunk` event."""
        with self.mapped():
            reply = self.client.invoke_model_with_response_stream(
                modelId=self.model, body=json.dumps(body).encode(),
                contentType="application/json", accept="application/json",
            )
        for event in self.events(reply["body"]):
            if "chunk" in event:  # {"chunk": {"bytes": b'<model-native JSON>'}}
                yield self._json(event["chunk"]["bytes"])

    # ----- chat (Converse) ---------------------------------------------------------------------

    def chat(self, request: dict) -> dict:
        kwargs = converse.to_converse(request, self.model, self.vendor)
        with self.mapped():
            reply = self.client.converse(**kwargs)
        return self.read(lambda r: converse.from_converse(r, self.model), reply)

    def chat_stream(self, request: dict) -> Iterator[Chunk]:
        kwargs = converse.to_converse(request, self.model, self.vendor)
        include = bool((request.get("stream_options") or {}).get("include_usage"))
        state = converse.StreamState(self.model, include_usage=include)
        with self.mapped():
            reply = self.client.converse_stream(**kwargs)
        for event in self.events(reply["stream"]):
            yield from self.read(lambda e: list(converse.from_stream_event(e, state)), event)
        if not state.finished:
            raise UpstreamError(f"The {self._label()} provider's stream ended before its metadata event.")

    # ----- completions (InvokeModel, native body per family) -------------------------------------

    def _family(self, request: Mapping[str, Any]) -> families.Family:
        converse.refuse_unknown(request, families.COMPLETION_KEYS)
        converse.check_n(request)
        family = families.completion_family(self.model)
        assert family is not None  # check_model rejected other models at load
        return family

    @staticmethod
    def _prompts(request: Mapping[str, Any]) -> list[str]:
        return request["prompt"] if isinstance(request["prompt"], list) else [request["prompt"]]

    def completions(self, request: dict) -> dict:
        family = self._family(request)
        choices, prompt_tokens, completion_tokens = [], 0, 0
        for index, prompt in enumerate(self._prompts(request)):
            body, headers = self.invoke(family.to_upstream(prompt, request))
            piece = self.read(family.reply, body)
            # Bedrock's token-count headers are authoritative; the body's counts are the fallback.
            prompt_tokens += int(headers.get("x-amzn-bedrock-input-token-count") or piece.prompt_tokens or 0)
            completion_tokens += int(headers.get("x-amzn-bedrock-output-token-count") or piece.completion_tokens or 0)
            choices.append(shapes.completions_choice(index, piece.text, piece.finish or "stop"))
        return shapes.completions_response(
            model=self.model, choices=choices, usage=shapes.usage(prompt_tokens, completion_tokens)
        )

    def completions_stream(self, request: dict) -> Iterator[Chunk]:
        family = self._family(request)
        prompts = self._prompts(request)
        bodies = [family.to_upstream(p, request, stream=True) for p in prompts]
        base = {"id": shapes.new_id("cmpl"), "model": self.model, "created": shapes.now()}
        prompt_tokens = completion_tokens = 0
        for index, body in enumerate(bodies):
            reason, metered, usage = None, False, native.Piece()
            for obj in self.invoke_stream(body):
                piece = self.read(family.chunk, obj)  # to_upstream refused non-streaming families
                metered = metered or native.METRICS in obj
                reason = piece.finish or reason
                usage.prompt_tokens = piece.prompt_tokens if piece.prompt_tokens is not None else usage.prompt_tokens
                usage.completion_tokens = piece.completion_tokens if piece.completion_tokens is not None else usage.completion_tokens
                if piece.text:
                    yield shapes.completions_chunk(**base, index=index, text=piece.text)
            if not metered:
                raise UpstreamError(f"The {self._label()} provider's stream ended before its invocation metrics.")
            prompt_tokens += usage.prompt_tokens or 0
            completion_tokens += usage.completion_tokens or 0
            yield shapes.completions_chunk(**base, index=index, text="", finish_reason=reason or "stop")
        if (request.get("stream_options") or {}).get("include_usage"):
            yield {**shapes.completions_chunk(**base, text=""), "choices": [],
                   "usage": shapes.usage(prompt_tokens, completion_tokens)}

    # ----- embeddings ----------------------------------------------------------------------------

    def embeddings(self, request: dict) -> dict:
        converse.refuse_unknown(request, embeddings.EMBEDDING_KEYS)
        kind = embeddings.embedding_family(self.model)
        if request.get("encoding_format") not in (None, "float"):
            raise InvalidRequest(f"Only encoding_format 'float' is supported by the {self._label()} provider.",
                                 param="encoding_format")
        if request.get("dimensions") is not None and kind != "titan":
            raise InvalidRequest("dimensions is supported only by Titan embedding models.", param="dimensions")
        if request.get("input_type") is not None and kind != "cohere":
            raise InvalidRequest("input_type is supported only by Cohere embedding models.", param="input_type")
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        vectors: list[list[float]] = []
        tokens = 0
        if kind == "titan":  # Titan embeds one text per call
            for text in texts:
                body, headers = self.invoke(embeddings.titan_embed_body(text, request))
                vector, count = self.read(embeddings.titan_embedding, body)
                vectors.append(vector)
                tokens += int(headers.get("x-amzn-bedrock-input-token-count") or count or 0)
        else:
            for start in range(0, len(texts), embeddings.COHERE_BATCH):
                batch = texts[start:start + embeddings.COHERE_BATCH]
                body, headers = self.invoke(embeddings.cohere_embed_body(batch, request))
                got = self.read(embeddings.cohere_embeddings, body)
                if len(got) != len(batch):
                    raise UpstreamError(f"The {self._label()} provider returned {len(got)} embeddings for {len(batch)} texts.")
                vectors.extend(got)
                tokens += int(headers.get("x-amzn-bedrock-input-token-count") or 0)
        return shapes.embeddings_response(
            model=self.model, vectors=vectors, usage={"prompt_tokens": tokens, "total_tokens": tokens}
        )
