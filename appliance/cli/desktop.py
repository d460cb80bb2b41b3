"""``enclave desktop``: the UI in a native window (pywebview, Qt), the server on 127.0.0.1 only.

Optional: needs the ``[desktop]`` extra (pywebview, PyQt6 with WebEngine). The web server runs
in a thread of this process; closing the window stops it and seals the appliance.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from typing import Annotated, Any

import typer
import uvicorn

from appliance.cli.common import (
    HomeOpt,
    PassphraseFileOpt,
    reporting,
    serving_appliance,
    settings_for,
)
from appliance.errors import EnclaveError, InvalidRequest
from appliance.web import create_app

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def start_server(
    app: Any, port: int, timeout: float = 60.0
) -> tuple[uvicorn.Server, threading.Thread]:
    """Serve ``app`` on 127.0.0.1:``port`` in a daemon thread; return once it accepts."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=LOOPBACK,
            port=port,
            log_config=None,
            access_log=False,
            server_header=False,
        )
    )
    thread = threading.Thread(target=server.run, name="enclave-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise EnclaveError(f"The desktop server did not start on {LOOPBACK}:{port}.")
        time.sleep(0.05)
    return server, thread


def _load_webview() -> Any:
    try:
        import webview
    except ImportError as exc:
        raise InvalidRequest(
            "Desktop mode needs the optional extra: pip install 'enclave[desktop]' "
            "(pywebview with Qt WebEngine)."
        ) from exc
    return webview


def register(app: typer.Typer) -> None:
    """Add ``desktop`` to ``app``."""

    @app.command()
    def desktop(
        home: HomeOpt = None,
        port: Annotated[
            int | None, typer.Option("--port", help="Loopback port (default: a free one).")
        ] = None,
        passphrase_file: PassphraseFileOpt = None,
        smoke_test: Annotated[
            bool,
            typer.Option(
                "--smoke-test",
                hidden=True,
                help="Print the first page loaded (URL, title) as JSON and close the window.",
            ),
        ] = False,
    ) -> None:
        """Open Enclave in a desktop window; the server listens on 127.0.0.1 only."""
        with reporting():
            webview = _load_webview()
            settings = settings_for(home, host=LOOPBACK, port=port or free_port())
            with serving_appliance(settings, passphrase_file) as appliance:
                server, thread = start_server(create_app(appliance), settings.port)
                try:
                    window = webview.create_window(
                        "Enclave", f"http://{LOOPBACK}:{settings.port}/", width=1280, height=860
                    )
                    if smoke_test:
                        window.events.loaded += lambda: _report_and_close(window)
                    webview.start(gui="qt", private_mode=True)
                finally:
                    server.should_exit = True
                    thread.join(timeout=30)


def _report_and_close(window: Any) -> None:
    title = window.evaluate_js("document.title")
    sys.stdout.write(json.dumps({"url": window.get_current_url(), "title": title}) + "\n")
    sys.stdout.flush()
    window.destroy()
