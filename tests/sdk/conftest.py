"""Fixtures for the official-SDK compatibility tests: run parapet-mock and Parapet, point SDKs at Parapet.

Binaries: $PARAPET_BIN and $PARAPET_MOCK_BIN, or (if unset) `cargo build` of
target/debug/parapet and target/debug/parapet-mock. With CI=true anything missing
(binaries, the openai/anthropic packages) is a failure; otherwise those tests are
skipped with the reason.

SDK_TARGET=mock points the SDKs straight at the mock (for checking the tests and
the mock without a proxy); the default, SDK_TARGET=parapet, goes through Parapet.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TARGET = os.environ.get("SDK_TARGET", "parapet")
READY_DEADLINE_S = 30.0
MOCK_START_DEADLINE_S = 15.0


def unavailable(reason: str):
    """Fail under CI (a missing prerequisite must not look green), skip elsewhere."""
    if IN_CI:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def binary(env_var: str, name: str, built: dict) -> Path:
    """The binary named by env_var, or target/debug/<name> after a targeted cargo build."""
    if os.environ.get(env_var):
        path = Path(os.environ[env_var])
    else:
        if "done" not in built:
            built["done"] = True
            try:
                res = subprocess.run(
                    ["cargo", "build", "--bin", "parapet", "--bin", "parapet-mock"],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=1200,
                )
                built["error"] = None if res.returncode == 0 else res.stderr[-4000:]
            except (OSError, subprocess.TimeoutExpired) as e:
                built["error"] = str(e)
        if built.get("error"):
            unavailable(f"cargo build of the binaries failed:\n{built['error']}")
        path = ROOT / "target" / "debug" / name
    if not path.is_file() or not os.access(path, os.X_OK):
        unavailable(f"binary {path} is missing (set {env_var} or build it)")
    return path


class Proc:
    """A child process whose stdout/stderr are drained into memory (so pipes never fill)."""

    def __init__(self, args: list[str], env: dict | None = None):
        self.args = args
        self.p = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=ROOT,
        )
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.first_line = threading.Event()
        threading.Thread(target=self._drain, args=(self.p.stdout, self.out, True), daemon=True).start()
        threading.Thread(target=self._drain, args=(self.p.stderr, self.err, False), daemon=True).start()

    def _drain(self, stream, sink, signal_first):
        for line in iter(stream.readline, b""):
            sink.append(line)
            if signal_first:
                self.first_line.set()
        if signal_first:
            self.first_line.set()

    def logs(self) -> str:
        return (b"".join(self.out) + b"\n--- stderr ---\n" + b"".join(self.err)).decode(errors="replace")[-6000:]

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(timeout=5)


def start_mock(mock_bin: Path) -> tuple[Proc, str]:
    proc = Proc([str(mock_bin), "--listen", "127.0.0.1:0"])
    if not proc.first_line.wait(MOCK_START_DEADLINE_S) or not proc.out:
        proc.stop()
        pytest.fail(f"parapet-mock printed no address within {MOCK_START_DEADLINE_S}s:\n{proc.logs()}")
    line = proc.out[0].decode().strip()
    prefix = "listening on "
    if not line.startswith(prefix):
        proc.stop()
        pytest.fail(f"unexpected first line from parapet-mock: {line!r}")
    return proc, line[len(prefix):]


def parapet_config(mock_url: str, policies_dir: Path | None = None) -> str:
    policies = policies_dir or ROOT / "policies"
    return f"""
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[endpoints]]
id = "mock-openai"
kind = "openai"
base_url = "{mock_url}"
api_key_env = "MOCK_PROVIDER_KEY"

[[endpoints]]
id = "mock-anthropic"
kind = "anthropic"
base_url = "{mock_url}"
api_key_env = "MOCK_PROVIDER_KEY"

[[routes]]
id = "anthropic"
path_prefix = "/v1/messages"
endpoint = "mock-anthropic"
auth = "passthrough"

[[routes]]
id = "openai"
path_prefix = "/v1/"
endpoint = "mock-openai"
auth = "passthrough"

[policies]
dir = "{policies}"
"""


def start_parapet(
    parapet_bin: Path, mock_url: str, workdir: Path, policies_dir: Path | None = None
) -> tuple[Proc, str]:
    config = workdir / "parapet.toml"
    config.write_text(parapet_config(mock_url, policies_dir))
    listen, admin = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        PARAPET_LISTEN=f"127.0.0.1:{listen}",
        PARAPET_ADMIN_LISTEN=f"127.0.0.1:{admin}",
        MOCK_PROVIDER_KEY="sk-mock-provider-key",
    )
    proc = Proc([str(parapet_bin), "serve", "--config", str(config)], env=env)
    deadline = time.monotonic() + READY_DEADLINE_S
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            pytest.fail(f"parapet exited with {proc.p.returncode} before /readyz:\n{proc.logs()}")
        try:
            status, body = http_get(f"http://127.0.0.1:{admin}/readyz", timeout=1.0)
            if status == 200:
                return proc, f"http://127.0.0.1:{listen}"
            last = f"HTTP {status}: {body[:200]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    proc.stop()
    pytest.fail(f"parapet /readyz not 200 within {READY_DEADLINE_S}s ({last}):\n{proc.logs()}")


@dataclass
class Stack:
    """Where the SDKs point (`base`) and the mock behind it (`mock`)."""

    base: str
    mock: str

    def mock_requests(self) -> list[dict]:
        status, body = http_get(f"{self.mock}/__mock/requests")
        assert status == 200, body
        return json.loads(body)

    def clear_mock_requests(self) -> None:
        req = urllib.request.Request(f"{self.mock}/__mock/requests", method="DELETE")
        with urllib.request.urlopen(req, timeout=2.0) as r:
            assert r.status == 204


@pytest.fixture(scope="session")
def stack():
    if TARGET not in ("parapet", "mock"):
        pytest.fail(f"SDK_TARGET must be 'parapet' or 'mock', not {TARGET!r}")
    built: dict = {}
    mock_bin = binary("PARAPET_MOCK_BIN", "parapet-mock", built)
    parapet_bin = binary("PARAPET_BIN", "parapet", built) if TARGET == "parapet" else None
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="parapet-sdk-") as tmp:
        try:
            mock_proc, mock_url = start_mock(mock_bin)
            procs.append(mock_proc)
            if parapet_bin is None:
                base = mock_url
            else:
                proxy_proc, base = start_parapet(parapet_bin, mock_url, Path(tmp))
                procs.append(proxy_proc)
            yield Stack(base=base, mock=mock_url)
        finally:
            for p in reversed(procs):
                p.stop()


# A response-side deny rule on top of the shipped policies (for deny-mid-stream tests).
DENY_POLICY = """
[policy]
id = "output"
[[rules]]
id = "codename"
keywords = ["project bluebird"]
direction = "response"
action = "deny"
"""


@pytest.fixture(scope="session")
def deny_stack(stack):
    """A second Parapet in front of the same mock, with the shipped policies plus DENY_POLICY."""
    if TARGET != "parapet":
        pytest.skip("guardrail tests need Parapet (SDK_TARGET=mock)")
    parapet_bin = binary("PARAPET_BIN", "parapet", {})
    with tempfile.TemporaryDirectory(prefix="parapet-sdk-deny-") as tmp:
        pol = Path(tmp) / "policies"
        pol.mkdir()
        for f in (ROOT / "policies").glob("*.toml"):
            (pol / f.name).write_text(f.read_text())
        (pol / "output.toml").write_text(DENY_POLICY)
        proc, base = start_parapet(parapet_bin, stack.mock, Path(tmp), pol)
        try:
            yield Stack(base=base, mock=stack.mock)
        finally:
            proc.stop()


@pytest.fixture(scope="session")
def openai_mod():
    try:
        import openai
    except ImportError as e:
        unavailable(f"the openai package is not installed ({e}); see tests/sdk/requirements.txt")
    return openai


@pytest.fixture(scope="session")
def anthropic_mod():
    try:
        import anthropic
    except ImportError as e:
        unavailable(f"the anthropic package is not installed ({e}); see tests/sdk/requirements.txt")
    return anthropic


@pytest.fixture
def oai(stack, openai_mod):
    return openai_mod.OpenAI(base_url=f"{stack.base}/v1", api_key="sk-test", max_retries=0, timeout=20.0)


@pytest.fixture
def claude(stack, anthropic_mod):
    return anthropic_mod.Anthropic(base_url=stack.base, api_key="sk-ant-test", max_retries=0, timeout=20.0)
