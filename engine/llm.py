"""A client for a local LLM server that speaks the OpenAI chat-completions protocol.

Ollama (``http://localhost:11434/v1``), llama.cpp's ``llama-server``
(``http://127.0.0.1:8080``) and LM Studio (``http://localhost:1234/v1``) all
answer ``POST …/chat/completions``.  With ``"stream": true`` they reply with
server-sent events, one ``data: {json}`` line per piece of the answer and a
final ``data: [DONE]``; a server that ignores ``stream`` and sends one JSON
completion works too.

Only the standard library is used (``http.client``): the request goes straight
to the configured host, never through an HTTP proxy from the environment, since
the endpoint is meant to be on this machine or the local network.  Every failure
is raised as :class:`~engine.errors.LlmError` with a message for a person.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Generator, Iterator
from typing import Any
from urllib.parse import urlsplit

from .errors import LlmError

CHAT_PATH = "/chat/completions"
DEFAULT_TIMEOUT_S = 60.0  # per socket operation: the wait for the first token (model loading) and between tokens
ERROR_BODY_LIMIT = 64 * 1024  # bytes of an error reply read to find the server's message
JSON_BODY_LIMIT = 16 * 1024 * 1024  # a non-streamed completion larger than this is refused


def chat_completions_url(url: str) -> str:
    """The chat-completions URL for a configured base URL.

    ``http://host:11434/v1`` → ``http://host:11434/v1/chat/completions``;
    ``http://host:8080`` (no path) → ``http://host:8080/v1/chat/completions``;
    a URL already ending in ``/chat/completions`` is used as it is.
    Raises :class:`LlmError` for a URL that is not http(s).
    """
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LlmError(
            f"SHOEBOX_LLM_URL must be an http:// or https:// address such as http://localhost:11434/v1, not {url!r}"
        )
    path = parts.path.rstrip("/")
    if not path.endswith(CHAT_PATH):
        path = (path or "/v1") + CHAT_PATH
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{parts.netloc}{path}{query}"


def _server_message(body: bytes) -> str:
    """The error text in a server's error reply (JSON ``error.message`` and the like), else the raw text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str) and error[key].strip():
                    return error[key].strip()
        elif isinstance(error, str) and error.strip():
            return error.strip()
        for key in ("message", "detail"):
            if isinstance(data.get(key), str) and data[key].strip():
                return data[key].strip()
    return text[:500]


def _content_of(chunk: Any, *, streamed: bool) -> str | None:
    """The text piece in one streamed chunk (``choices[0].delta.content``) or a whole completion."""
    if not isinstance(chunk, dict):
        raise ValueError("not a JSON object")
    choices = chunk.get("choices")
    if not choices:  # e.g. a final usage-only chunk
        return None
    first = choices[0]
    if not isinstance(first, dict):
        raise ValueError("choices[0] is not an object")
    holder = first.get("delta") if streamed else first.get("message")
    if holder is None:  # some servers stream whole messages, or use the older completions shape
        holder = first.get("message") or first.get("delta") or {}
    content = holder.get("content") if isinstance(holder, dict) else None
    if content is None and isinstance(first.get("text"), str):
        content = first["text"]
    if content is not None and not isinstance(content, str):
        raise ValueError("content is not a string")
    return content


class LlmClient:
    """Talks to one OpenAI-compatible chat-completions endpoint.

    ``url`` is a base such as ``http://localhost:11434/v1`` or ``http://127.0.0.1:8080``,
    or a full ``…/chat/completions`` URL; ``model`` is sent as the request's model
    (left out when empty: llama.cpp's server needs none); ``api_key``, when given,
    is sent as a bearer token; ``timeout`` is in seconds per socket operation.
    """

    def __init__(self, url: str, model: str, *, timeout: float = DEFAULT_TIMEOUT_S, api_key: str | None = None):
        self.url = (url or "").strip()
        self.endpoint = chat_completions_url(self.url)
        self.model = (model or "").strip()
        self.timeout = timeout
        self.api_key = api_key
        parts = urlsplit(self.endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._path = parts.path + (f"?{parts.query}" if parts.query else "")

    def __repr__(self) -> str:
        return f"LlmClient({self.endpoint!r}, model={self.model!r})"

    # -- errors ---------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"the LLM server at {self.endpoint}"

    def _connection_error(self, exc: BaseException) -> LlmError:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return LlmError(
                f"{self._where()} did not answer within {self.timeout:g} s; the model may still be loading "
                "or the machine is busy: try again, or check that the server is working"
            )
        if isinstance(exc, ConnectionRefusedError):
            return LlmError(
                f"cannot connect to {self._where()} (connection refused): start the server "
                "(Ollama, llama.cpp's llama-server or LM Studio) or correct SHOEBOX_LLM_URL"
            )
        if isinstance(exc, socket.gaierror):
            return LlmError(f"cannot find the host of {self._where()} ({exc}): check SHOEBOX_LLM_URL")
        if isinstance(exc, http.client.HTTPException):
            detail = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            return LlmError(
                f"{self._where()} broke off the reply ({detail}): check that it is an "
                "OpenAI-compatible chat-completions server and look at its log"
            )
        return LlmError(
            f"cannot talk to {self._where()} ({exc}): check that it is running and SHOEBOX_LLM_URL is right"
        )

    def _http_error(self, status: int, reason: str, body: bytes) -> LlmError:
        message = _server_message(body) or reason or "no message"
        hint = ""
        if status == 404:
            hint = (
                f"; check SHOEBOX_LLM_URL (requests go to {self._path}) and that the model "
                f"{self.model or '(none set)'} is available on the server (SHOEBOX_LLM_MODEL)"
            )
        elif status in (401, 403):
            hint = "; the server wants an API key or refuses this client"
        elif status >= 500:
            hint = "; look at the server's log"
        return LlmError(f"{self._where()} answered HTTP {status} {reason}: {message}{hint}")

    def _malformed(self, what: str) -> LlmError:
        return LlmError(
            f"{self._where()} sent a reply that is not an OpenAI-compatible chat completion ({what}); "
            "check that SHOEBOX_LLM_URL points at a chat-completions endpoint"
        )

    # -- requests -------------------------------------------------------------------------------

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout)

    def stream_chat(
        self, messages: list[dict], *, temperature: float = 0.2, max_tokens: int | None = None
    ) -> Generator[str, None, None]:
        """Send a chat and yield the answer's text pieces as the server produces them.

        POSTs ``{"model", "messages", "stream": true, "temperature"[, "max_tokens"]}``
        and reads the server-sent events (``choices[0].delta.content`` of each
        ``data:`` line, until ``data: [DONE]``).  A plain JSON completion is yielded
        as one piece.  Nothing is sent until the first ``next()``; closing the
        iterator early closes the connection.  Raises :class:`LlmError`.
        """
        body: dict[str, Any] = {"messages": messages, "stream": True, "temperature": temperature}
        if self.model:
            body = {"model": self.model, **body}
        if max_tokens is not None:
            body["max_tokens"] = int(max_tokens)
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Accept": "text/event-stream, application/json",
            "User-Agent": "Shoebox",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"

        conn = self._connect()
        try:
            try:
                conn.request("POST", self._path, body=payload, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                raise self._connection_error(exc) from None
            if response.status >= 400:
                try:
                    error_body = response.read(ERROR_BODY_LIMIT)
                except (OSError, http.client.HTTPException):
                    error_body = b""
                raise self._http_error(response.status, response.reason, error_body)
            yield from self._read_reply(response)
        finally:
            conn.close()

    def _read_reply(self, response: http.client.HTTPResponse) -> Iterator[str]:
        try:
            first = response.readline()
            while first and not first.strip():
                first = response.readline()
            if first.lstrip().startswith((b"{", b"[")):
                rest = response.read(JSON_BODY_LIMIT)
                text = self._decode(first + rest)
                try:
                    completion = json.loads(text)
                except ValueError:
                    raise self._malformed("the JSON reply could not be parsed") from None
                content = self._content(completion, streamed=False)
                if content:
                    yield content
                return
            yield from self._read_events(first, response)
        except (OSError, http.client.HTTPException) as exc:
            raise self._connection_error(exc) from None

    def _decode(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._malformed("the reply is not UTF-8 text") from None

    def _content(self, data: Any, *, streamed: bool) -> str | None:
        """The text of one completion or streamed chunk; the server's own error, or malformed data, raise."""
        if isinstance(data, dict) and data.get("error") and not data.get("choices"):
            raise LlmError(f"{self._where()} reported an error: {_server_message(json.dumps(data).encode())}")
        try:
            return _content_of(data, streamed=streamed)
        except ValueError as exc:
            raise self._malformed(str(exc)) from None

    def _read_events(self, first: bytes, response: http.client.HTTPResponse) -> Iterator[str]:
        """Yield the content of each ``data:`` event; lines are decoded whole, so UTF-8 split across
        network chunks never breaks a character."""
        pending: list[str] = []  # data lines of an event that did not parse alone (multi-line data)
        received = False
        line_bytes = first
        while line_bytes:
            line = self._decode(line_bytes).rstrip("\r\n")
            line_bytes = response.readline()
            if not line:  # blank line: the end of an event
                if pending:
                    raise self._malformed(f"unreadable data line {pending[0][:80]!r}")
                continue
            if line.startswith(":"):  # an SSE comment (keep-alive)
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field != "data":  # "event:", "id:", "retry:"; "error:" carries a message on some servers
                if field == "error":
                    raise LlmError(f"{self._where()} reported an error: {_server_message(value.encode())}")
                if field not in ("event", "id", "retry"):
                    raise self._malformed(f"unexpected line {line[:80]!r}")
                continue
            if not pending and value.strip() == "[DONE]":
                return
            pending.append(value)
            try:
                chunk = json.loads("\n".join(pending))
            except ValueError:
                continue  # maybe the event's data goes on in the next line; a blank line decides
            pending = []
            received = True
            content = self._content(chunk, streamed=True)
            if content:
                yield content
        if pending:
            raise self._malformed(f"unreadable data line {pending[0][:80]!r}")
        if not received:
            raise self._malformed("the reply ended without any data")

    def chat(self, messages: list[dict], **kw: Any) -> str:
        """The whole answer to a chat, as one string (the joined :meth:`stream_chat`)."""
        return "".join(self.stream_chat(messages, **kw))


def client_from_settings(settings: Any) -> LlmClient | None:
    """The client for ``settings.llm_url`` / ``settings.llm_model``, or None when no URL is set.

    Raises :class:`LlmError` when the URL is not an http(s) address.
    """
    url = (getattr(settings, "llm_url", "") or "").strip()
    if not url:
        return None
    return LlmClient(url, getattr(settings, "llm_model", "") or "")
