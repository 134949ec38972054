"""A CrossEval mirror for tests: a CSV in the dataset's exact schema, attachments, tiny
Llamas (a base and two stand-in experts), and a scripted OpenAI-compatible judge server.

Everything is written by the tests; the suite, the judges and ``harness judge meta`` read
it through the same code users run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tasks.text.crosseval.data import COLUMNS, DATASET, FILE
from tests.llama_mirror import tiny_tokenizer

BASE = "test-org/tiny-llama-base"
EXPERTS = {"math": "test-org/tiny-llama-math", "spanish": "test-org/tiny-llama-spanish"}
URL = "https://example.org/crosseval/files/"

#: (capability in the data, prompt, attached file name or "")
PROMPTS = [
    ("English", "Write a short note thanking a colleague for their help.", ""),
    ("English", "Summarise why sleep matters in two sentences.", ""),
    ("Reasoning", "If all cats are animals and Tom is a cat, is Tom an animal?", ""),
    ("Reasoning", "A train leaves at 3 pm and travels 2 hours. When does it arrive?", ""),
    ("Spanish", "Escribe una frase sobre el mar.", ""),
    ("Spanish", "¿Cuál es la capital de España?", ""),
    ("Spanish & Reasoning", "Si tengo 3 manzanas y como una, ¿cuántas quedan?", ""),
    ("Spanish & Reasoning", "Juan es mayor que Ana y Ana es mayor que Luis. ¿Quién es menor?", ""),
    ("Coding", "Write a Python function that reverses a string.", ""),
    ("Coding & Reasoning", "Write code that checks whether a number is prime and explain.", ""),
    ("Long Context", "What is the main topic of the attached document?", "notes.txt"),
    ("Long Context & Coding", "Refactor the attached program.", "absent_program.py"),
    ("Image Recognition", "What animal is in the picture?", "cat.png"),
    ("Tool Use", "Search the web for today's weather in Paris.", ""),
]


def rows() -> list[dict[str, str]]:
    """Rows in CrossEval's schema, ratings varied so that correlations are defined."""
    out = []
    for number, (capability, prompt, attached) in enumerate(PROMPTS):
        row = {
            "prompt_id": f"p{number:03d}",
            "capability": capability,
            "difficulty": ("easy", "medium", "hard")[number % 3],
            "l1_category": "General",
            "l2_category": "Test",
            "prompt": prompt,
            "attached_file": URL + attached if attached else "",
        }
        for i in (1, 2, 3):
            row[f"response_{i}"] = f"Response {i} to {prompt[:30]}, with some detail."
            for j in (1, 2):
                rating = (number + i * 2 + j) % 5 + 1
                row[f"response_{i}_human_{j}_rating"] = str(rating)
                row[f"response_{i}_human_{j}_explanation"] = f"Rater {j} gives {rating}: why."
        out.append(row)
    return out


def write_csv(path: Path, data: list[dict[str, str]] | None = None, columns=COLUMNS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(data if data is not None else rows())
    return path


def write_dataset(root: Path) -> Path:
    """``MingZhong/crosseval`` in the mirror: test.csv and two of its attachments."""
    directory = root / "datasets" / DATASET
    write_csv(directory / FILE)
    attachments = directory / "attachments"
    attachments.mkdir(parents=True, exist_ok=True)
    (attachments / "notes.txt").write_text("The document is about tide pools and crabs.\n")
    (attachments / "cat.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    return directory


def tiny_causal_lm(tokenizer, seed: int = 0, positions: int = 4096):
    """A tiny LlamaForCausalLM (long context, so a judge prompt fits)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=positions,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def save(model, tokenizer, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_models(root: Path) -> None:
    """The base and two experts (the base moved along seeded random directions)."""
    import torch

    tokenizer = tiny_tokenizer([p for _, p, _ in PROMPTS] * 3)
    base = tiny_causal_lm(tokenizer)
    save(base, tokenizer, root / "models" / BASE)
    for seed, repo in enumerate(EXPERTS.values(), start=1):
        expert = tiny_causal_lm(tokenizer)
        expert.load_state_dict(base.state_dict())
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in expert.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
        save(expert, tokenizer, root / "models" / repo)


def build_mirror(root: Path) -> Path:
    write_dataset(root)
    write_models(root)
    return root


def suite_options(judge: str) -> dict[str, str]:
    return {
        "judge": judge,
        "base": BASE,
        "experts": ",".join(f"{name}={repo}" for name, repo in EXPERTS.items()),
        "capability_experts": "reasoning=math,spanish=spanish",
        "max_new_tokens": "4",
    }


# ---------------------------------------------------------------------------- judge server
class ScriptedJudgeServer:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1, scripted per model name:

    - ``good``: ``Score: N/5`` with N from a hash of the request (deterministic);
    - ``flaky``: a 429 with ``Retry-After: 0`` on every other request, else as ``good``;
    - ``limited``: always 429; ``broken``: always 500; ``slow``: answers after ``delay`` s;
    - ``echo``: repeats the Authorization header it got (to test scrubbing);
    - ``refused``: 401.

    ``requests`` counts requests per model; ``headers`` keeps the last Authorization;
    ``on_request(count)`` (if set) is called before each answer."""

    def __init__(self, delay: float = 1.0) -> None:
        self.requests: dict[str, int] = {}
        self.authorization: str | None = None
        self.delay = delay
        self.on_request: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model = body["model"]
                with server._lock:
                    server.requests[model] = server.requests.get(model, 0) + 1
                    count = server.requests[model]
                    server.authorization = self.headers.get("Authorization")
                if server.on_request is not None:
                    server.on_request(sum(server.requests.values()))
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": "no such path"})
                if model == "refused":
                    return self._send(401, {"error": "bad key"})
                if model == "limited" or (model == "flaky" and count % 2 == 1):
                    return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
                if model == "broken":
                    return self._send(500, {"error": "oops"})
                if model == "slow":
                    time.sleep(server.delay)
                user = body["messages"][-1]["content"]
                score = int(hashlib.sha256(user.encode()).hexdigest(), 16) % 5 + 1
                text = f"#### Evaluation Score\nScore: {score}/5"
                if model == "echo":
                    text = f"you sent {server.authorization}. Score: 3/5"
                return self._send(200, {"choices": [{"message": {"content": text}}]})

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def spec(self, model: str, **options: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in {"base_url": self.base_url, **options}.items())
        return f"openai:{model}?{query}"

    def __enter__(self) -> ScriptedJudgeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
