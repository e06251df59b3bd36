"""Run the project's NGINX template for real: rendered like the official image does, on a free port.

The image renders ``/etc/nginx/templates/*.template`` with ``envsubst``, replacing only the
variables that are defined (``$NAME`` and ``${NAME}``) and leaving NGINX's own ``$variables``
alone. :func:`render_template` does exactly that for the three variables the template uses.
The main ``nginx.conf`` is the image's in production; here a minimal one keeps the pid file,
error log and temp files in the test's folder, so nothing outside it is touched.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.service import free_port, wait_until_ok

REPO = Path(__file__).resolve().parents[2]
FRONTEND_DIR = REPO / "frontend"
TEMPLATE = FRONTEND_DIR / "nginx.conf.template"
TEMPLATE_VARIABLES = frozenset({"NGINX_PORT", "CHAT_SERVICE_URL", "FRONTEND_ROOT"})
STARTUP_TIMEOUT_S = 10.0

_SHELL_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")

MAIN_CONF = """\
{user}
pid {workdir}/nginx.pid;
error_log {workdir}/error.log notice;
worker_processes 1;

events {{
    worker_connections 256;
}}

http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log {workdir}/default-access.log;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    include {snippet};
}}
"""


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """``envsubst '${A} ${B}'``: replace the given variables, leave every other ``$name``."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return _SHELL_VARIABLE.sub(substitute, template)


def template_variables(template: str) -> set[str]:
    """The upper-case ``$NAME`` / ``${NAME}`` references: the ones envsubst would replace."""
    names = {m.group(1) or m.group(2) for m in _SHELL_VARIABLE.finditer(template)}
    return {name for name in names if name.isupper()}


@dataclass
class NginxServer:
    """NGINX with the rendered template, proxying to ``service_url``; logs in ``workdir``."""

    binary: str
    workdir: Path
    service_url: str
    frontend_root: Path = FRONTEND_DIR
    port: int = field(default_factory=free_port)
    # The API key NGINX sends upstream (the file a Secret would provide), if any.
    upstream_api_key: str | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def main_conf(self) -> Path:
        return self.workdir / "nginx.conf"

    @property
    def access_log_path(self) -> Path:
        return self.workdir / "nginx.stdout"

    @property
    def error_log_path(self) -> Path:
        return self.workdir / "error.log"

    def write_config(self) -> Path:
        """Render the template into ``conf.d/`` and write a main config that includes it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        snippet = self.workdir / "conf.d" / "chat-frontend.conf"
        snippet.parent.mkdir(exist_ok=True)
        snippet.write_text(
            render_template(
                TEMPLATE.read_text(),
                {
                    "NGINX_PORT": str(self.port),
                    "CHAT_SERVICE_URL": self.service_url,
                    "FRONTEND_ROOT": str(self.frontend_root),
                },
            )
        )
        # Workers keep the uid of the master, as in nginx-unprivileged (uid 101 for both);
        # as root, NGINX would otherwise drop workers to "nobody", who cannot enter the
        # test's private temp folder.
        if self.upstream_api_key is not None:
            auth = self.workdir / "chat-service" / "upstream-auth.conf"
            auth.parent.mkdir(exist_ok=True)
            auth.write_text(f'proxy_set_header Authorization "Bearer {self.upstream_api_key}";\n')
        user = "user root;" if os.geteuid() == 0 else ""
        self.main_conf.write_text(
            MAIN_CONF.format(user=user, workdir=self.workdir, snippet=snippet)
        )
        return self.main_conf

    def command(self, *args: str) -> list[str]:
        return [self.binary, "-p", f"{self.workdir}/", "-c", str(self.main_conf), *args]

    def check_config(self) -> subprocess.CompletedProcess[str]:
        """``nginx -t`` on the same files the server runs with."""
        return subprocess.run(
            self.command("-t"), capture_output=True, text=True, timeout=30, check=False
        )

    def start(self) -> NginxServer:
        self.write_config()
        with (
            self.access_log_path.open("ab") as out,
            (self.workdir / "nginx.stderr").open("ab") as err,
        ):
            self.process = subprocess.Popen(
                self.command("-g", "daemon off;"),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        try:
            wait_until_ok(f"{self.base_url}/nginx-health", self.process, STARTUP_TIMEOUT_S)
        except RuntimeError as error:
            self.stop()
            raise RuntimeError(f"nginx {error}:\n{self.errors()}") from None

    def __enter__(self) -> NginxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def errors(self) -> str:
        paths = (self.error_log_path, self.workdir / "nginx.stderr")
        return "\n".join(p.read_text(errors="replace") for p in paths if p.exists())

    def access_log(self) -> list[dict[str, Any]]:
        """The JSON access log lines written so far (each line must be one JSON object)."""
        if not self.access_log_path.exists():
            return []
        lines = self.access_log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]
