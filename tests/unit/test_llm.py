"""The chat-completions client against a real HTTP server on 127.0.0.1 that speaks the protocol."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.errors import LlmError, ShoeboxError
from engine.llm import LlmClient, chat_completions_url, client_from_settings
from engine.settings import load_settings

GATE_WAIT_S = 10  # the longest a scripted reply waits for the test to open a gate


def sse_event(delta: dict | None = None, *, finish: str | None = None, choices: bool = True) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "test-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}] if choices else [],
    }
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode("utf-8") + b"\n\n"


def sse_stream(pieces: list[str]) -> list[bytes]:
    """A whole streamed answer: a role-only first delta, one event per piece, a finish, [DONE]."""
    return (
        [sse_event({"role": "assistant"})]
        + [sse_event({"content": p}) for p in pieces]
        + [sse_event(finish="stop"), b"data: [DONE]\n\n"]
    )


class FakeChatServer:
    """An OpenAI-compatible chat-completions server on 127.0.0.1, scripted per test.

    ``script`` is what the next replies send: a list of byte strings written as separate
    HTTP chunks (Transfer-Encoding: chunked) and :class:`threading.Event` gates the reply
    waits on; ``status`` and ``content_type`` set the head.  Every request is recorded
    in ``requests`` as (path, headers, parsed JSON body).
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict]] = []
        self.status = 200
        self.content_type = "text/event-stream"
        self.script: list[bytes | threading.Event] = [*sse_stream(["ok"])]
        self.gates: list[threading.Event] = []
        self.finished = threading.Event()  # set when a reply has been written to the end (or broke off)
        self.aborted = False  # a reply's writes failed: the client hung up before the end
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length).decode("utf-8"))
                server.requests.append((self.path, dict(self.headers.items()), body))
                try:
                    self.send_response(server.status)
                    self.send_header("Content-Type", server.content_type)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for part in server.script:
                        if isinstance(part, threading.Event):
                            part.wait(GATE_WAIT_S)
                            continue
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:  # the client went away (cancelled, timed out)
                    server.aborted = True
                finally:
                    server.finished.set()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-llm", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def gate(self) -> threading.Event:
        event = threading.Event()
        self.gates.append(event)
        return event

    def __enter__(self) -> FakeChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for event in self.gates:
            event.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=GATE_WAIT_S)


@pytest.fixture
def chat_server():
    with FakeChatServer() as server:
        yield server


def closed_port_url() -> str:
    """An address on 127.0.0.1 where nothing listens (the port was just freed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "서울은 어때?"}]


def test_the_request_is_an_openai_chat_completion(chat_server):
    client = LlmClient(chat_server.base_url, "llama3.2", api_key="secret")
    assert client.chat(MESSAGES, temperature=0.3, max_tokens=50) == "ok"
    [(path, headers, body)] = chat_server.requests
    assert path == "/v1/chat/completions"
    assert body == {"model": "llama3.2", "messages": MESSAGES, "stream": True, "temperature": 0.3, "max_tokens": 50}
    assert headers["Authorization"] == "Bearer secret"
    assert headers["Content-Type"].startswith("application/json")


def test_tokens_stream_in_order_as_they_arrive(chat_server):
    gate = chat_server.gate()
    # "서" is E1 84 9C in UTF-8: the first HTTP chunk ends after its first byte.
    seoul = sse_event({"content": " 서울"})
    split = seoul.index(" 서울".encode()) + 2
    chat_server.script = [
        sse_event({"role": "assistant"}),
        sse_event({"content": "Hello"}),
        gate,
        seoul[:split],
        seoul[split:],
        sse_event({"content": "!"}),
        sse_event({}, choices=False),
        sse_event(finish="stop"),
        b": keep-alive\n\n",
        b"data: [DONE]\n\n",
    ]
    tokens = LlmClient(chat_server.base_url, "m").stream_chat(MESSAGES)
    # The first piece arrives while the server still holds the rest back: the reply is read as it streams.
    assert next(tokens) == "Hello"
    assert not chat_server.finished.is_set()
    gate.set()
    assert list(tokens) == [" 서울", "!"]


def test_a_server_that_ignores_stream_and_sends_one_completion(chat_server):
    chat_server.content_type = "application/json"
    completion = {
        "id": "c1",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "한 번에 전부 [1]."}, "finish_reason": "stop"}
        ],
    }
    body = json.dumps(completion, ensure_ascii=False).encode("utf-8")
    chat_server.script = [body[:40], body[40:]]
    assert list(LlmClient(chat_server.base_url, "m").stream_chat(MESSAGES)) == ["한 번에 전부 [1]."]


def test_multi_line_data_and_crlf_line_ends(chat_server):
    chat_server.script = [
        b'data: {"choices": [{"delta":\r\ndata:  {"content": "a"}}]}\r\n\r\n',
        b'data: {"choices": [{"delta": {"content": "b"}}]}\r\n\r\n',
        b"data: [DONE]\r\n\r\n",
    ]
    assert LlmClient(chat_server.base_url, "m").chat(MESSAGES) == "ab"


def test_http_error_shows_the_status_and_the_servers_message(chat_server):
    chat_server.status = 500
    chat_server.content_type = "application/json"
    chat_server.script = [
        json.dumps({"error": {"message": "model 'nope' ran out of memory", "type": "server"}}).encode()
    ]
    with pytest.raises(LlmError) as caught:
        LlmClient(chat_server.base_url, "nope").chat(MESSAGES)
    message = str(caught.value)
    assert "HTTP 500" in message and "model 'nope' ran out of memory" in message
    assert chat_server.base_url in message
    assert isinstance(caught.value, ShoeboxError)


def test_http_404_says_what_to_check(chat_server):
    chat_server.status = 404
    chat_server.content_type = "text/plain"
    chat_server.script = [b"404 page not found"]
    with pytest.raises(LlmError, match=r"HTTP 404.*404 page not found.*SHOEBOX_LLM_URL.*SHOEBOX_LLM_MODEL"):
        LlmClient(chat_server.base_url, "m").chat(MESSAGES)


def test_connection_refused_is_an_llm_error_naming_the_address():
    url = closed_port_url()
    with pytest.raises(LlmError) as caught:
        LlmClient(url, "m").chat(MESSAGES)
    assert "connection refused" in str(caught.value)
    assert url in str(caught.value)


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ([b"data: {not json\n\n", b"data: [DONE]\n\n"], "unreadable data line"),
        ([b"data: [1, 2]\n\n"], "not a JSON object"),
        ([b'data: {"choices": [{"delta": {"content": 5}}]}\n\n'], "content is not a string"),
        ([b"<html><body>It works!</body></html>\n"], "unexpected line"),
        ([], "ended without any data"),
    ],
)
def test_malformed_streams_raise_llm_error(chat_server, script, expected):
    chat_server.script = script
    with pytest.raises(LlmError, match=expected) as caught:
        LlmClient(chat_server.base_url, "m").chat(MESSAGES)
    assert "OpenAI-compatible" in str(caught.value)


def test_an_error_event_in_the_stream_is_raised(chat_server):
    chat_server.script = [sse_event({"content": "par"}), b'data: {"error": {"message": "context too long"}}\n\n']
    tokens = LlmClient(chat_server.base_url, "m").stream_chat(MESSAGES)
    assert next(tokens) == "par"
    with pytest.raises(LlmError, match="context too long"):
        next(tokens)


def test_a_server_that_stops_answering_times_out(chat_server):
    gate = chat_server.gate()
    chat_server.script = [sse_event({"content": "first"}), gate, b"data: [DONE]\n\n"]
    tokens = LlmClient(chat_server.base_url, "m", timeout=0.3).stream_chat(MESSAGES)
    assert next(tokens) == "first"
    with pytest.raises(LlmError, match=r"did not answer within 0\.3 s"):
        next(tokens)


def test_closing_the_iterator_closes_the_connection(chat_server):
    gate = chat_server.gate()
    chat_server.script = [sse_event({"content": "one"}), gate] + [sse_event({"content": "x" * 1000})] * 200
    tokens = LlmClient(chat_server.base_url, "m").stream_chat(MESSAGES)
    assert next(tokens) == "one"
    tokens.close()
    gate.set()
    # The server's writes fail once the client has hung up (200 kB would fit the socket buffers otherwise).
    assert chat_server.finished.wait(GATE_WAIT_S)
    assert chat_server.aborted


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"),
        ("http://localhost:11434/v1/", "http://localhost:11434/v1/chat/completions"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions"),
        ("https://box.lan/llm/v1/chat/completions", "https://box.lan/llm/v1/chat/completions"),
        (" http://127.0.0.1:1234/api/v1 ", "http://127.0.0.1:1234/api/v1/chat/completions"),
    ],
)
def test_base_urls_become_the_chat_completions_url(url, expected):
    assert chat_completions_url(url) == expected


@pytest.mark.parametrize("url", ["localhost:11434", "ftp://host/v1", "http://", ""])
def test_a_url_that_is_not_http_is_refused(url):
    with pytest.raises(LlmError, match="SHOEBOX_LLM_URL"):
        LlmClient(url, "m")


def test_a_full_chat_completions_url_is_used_as_given(chat_server):
    full = chat_server.base_url.replace("/v1", "/custom/chat/completions")
    LlmClient(full, "m").chat(MESSAGES)
    assert chat_server.requests[0][0] == "/custom/chat/completions"


def test_an_empty_model_is_left_out_of_the_request(chat_server):
    LlmClient(chat_server.base_url, "").chat(MESSAGES)
    assert "model" not in chat_server.requests[0][2]


def test_client_from_settings(tmp_path):
    assert client_from_settings(load_settings(home=tmp_path, env={})) is None
    settings = load_settings(
        home=tmp_path, env={"SHOEBOX_LLM_URL": "http://127.0.0.1:8080", "SHOEBOX_LLM_MODEL": "qwen2.5"}
    )
    client = client_from_settings(settings)
    assert client is not None
    assert client.endpoint == "http://127.0.0.1:8080/v1/chat/completions"
    assert client.model == "qwen2.5"
