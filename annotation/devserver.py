"""Start and stop a throwaway Label Studio server on localhost, for tests and local trials.

Label Studio lives in its own virtual environment, ``.venv-ls`` at the repository root (it pins
Django; ``scripts/label_studio.sh`` installs it). :func:`running_label_studio` starts it on a free
port with a temporary data directory, an admin user and a legacy API token created from the
environment, waits until ``/health`` answers, and stops the whole process group on exit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

#: Repository root (this file is annotation/devserver.py).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Where scripts/label_studio.sh installs Label Studio.
DEFAULT_LABEL_STUDIO_BIN = REPO_ROOT / ".venv-ls" / "bin" / "label-studio"


@dataclass(frozen=True)
class LabelStudioServer:
    """A running Label Studio: where it listens and how to log in.

    ``token`` is the admin's legacy API token (works with ``LabelStudio(api_key=token)``);
    ``startup_seconds`` is the wall time from launch until ``/health`` answered.
    """

    base_url: str
    token: str
    username: str
    password: str
    data_dir: Path
    log_path: Path
    startup_seconds: float
    pid: int


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def label_studio_environment(
    *, data_dir: Path, username: str, password: str, token: str, base_env: dict[str, str]
) -> dict[str, str]:
    """Environment for a quiet, local, non-interactive Label Studio.

    The admin and its token come from ``LABEL_STUDIO_USERNAME/PASSWORD/USER_TOKEN``; the token
    only authenticates with the legacy-token flag on. Analytics, version checks and Sentry are
    off (nothing leaves the machine); SSRF protection is off so webhooks may call localhost.
    """
    env = dict(base_env)
    env.update(
        {
            "LABEL_STUDIO_USERNAME": username,
            "LABEL_STUDIO_PASSWORD": password,
            "LABEL_STUDIO_USER_TOKEN": token,
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "SSRF_PROTECTION_ENABLED": "false",
            "LOCAL_FILES_SERVING_ENABLED": "true",
            "LOCAL_FILES_DOCUMENT_ROOT": str(data_dir),
            "DJANGO_DB": "sqlite",
            "HOME": str(data_dir),  # some tools cache under ~; keep it inside the throwaway dir
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _log_tail(path: Path, n_chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n_chars:]
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Terminate the process group politely, then kill it if it lingers."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextlib.contextmanager
def running_label_studio(
    *,
    label_studio_bin: Path | str = DEFAULT_LABEL_STUDIO_BIN,
    port: int | None = None,
    data_dir: Path | None = None,
    username: str = "researcher@spira.local",
    password: str | None = None,
    token: str | None = None,
    startup_timeout: float = 150.0,
) -> Iterator[LabelStudioServer]:
    """Run Label Studio on ``127.0.0.1:port`` for the duration of the ``with`` block.

    ``port`` defaults to a free one; ``data_dir`` to a temporary directory removed afterwards
    (a given ``data_dir`` is kept). ``password`` and ``token`` default to random ones. Waits up
    to ``startup_timeout`` seconds for ``/health``. Yields a :class:`LabelStudioServer`.

    Raises FileNotFoundError when ``label_studio_bin`` is missing (run scripts/label_studio.sh),
    RuntimeError with the end of the server log when it exits early or does not come up in time.
    """
    binary = Path(label_studio_bin)
    if not binary.exists():
        raise FileNotFoundError(f"{binary} not found; install it with scripts/label_studio.sh")
    port = port or free_port()
    # a leading "-" would be read as an option by label-studio's argument parser
    password = password or "pw" + secrets.token_urlsafe(16)
    token = token or secrets.token_hex(20)
    own_dir = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="spira-ls-")) if data_dir is None else Path(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "label-studio.log"
    env = label_studio_environment(
        data_dir=root,
        username=username,
        password=password,
        token=token,
        base_env=dict(os.environ),
    )
    command = [
        str(binary),
        "start",
        "--no-browser",
        "--internal-host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        str(root),
        "--username",
        username,
        "--password",
        password,
        "--user-token",
        token,
    ]
    base_url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        # A new session makes the server and its workers one process group we can stop together.
        process = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = started + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"Label Studio exited with code {process.returncode} before answering "
                    f"/health; log tail:\n{_log_tail(log_path)}"
                )
            try:
                if httpx.get(f"{base_url}/health", timeout=2.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Label Studio did not answer {base_url}/health within {startup_timeout:.0f} s;"
                    f" log tail:\n{_log_tail(log_path)}"
                )
            time.sleep(0.5)
        yield LabelStudioServer(
            base_url=base_url,
            token=token,
            username=username,
            password=password,
            data_dir=root,
            log_path=log_path,
            startup_seconds=time.monotonic() - started,
            pid=process.pid,
        )
    finally:
        _stop(process)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
