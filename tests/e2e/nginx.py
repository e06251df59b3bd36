"""Run the project's NGINX template for real: rendered like the official image does, on a free port.

The image renders ``/etc/nginx/templates/*.template`` with ``envsubst``, replacing only the
variables that are defined (``$NAME`` and ``${NAME}``) and leaving NGINX's own ``$variables``
alone. :func:`render_template` does exactly that for the three variables the template uses.
The image also runs the project's own start-up scripts, which turn NGINX_TRUSTED_PROXIES
into the ``set_real_ip_from`` lines the template includes and CHAT_OIDC_ISSUER into the origin
the page's Content-Security-Policy admits; :class:`NginxServer` runs the same scripts. The
main ``nginx.conf`` is the image's in production; here a minimal one keeps the pid file, error
log and temp files in the test's folder, so nothing outside it is touched.

:class:`IngressNginx` is a second, hand-written NGINX that stands in for a Kubernetes ingress
controller in front of the template's NGINX, so tests can run the two-hop chain for real.
"""

from __future__ import annotations

import abc
import json
import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from tests.support.service import free_port, wait_until_ok

REPO = Path(__file__).resolve().parents[2]
FRONTEND_DIR = REPO / "frontend"
TEMPLATE = FRONTEND_DIR / "nginx.conf.template"
# The image runs it from /docker-entrypoint.d/ (see the Dockerfile); it writes this file into
# the folder the template is rendered to, and the template includes it.
TRUSTED_PROXIES_SCRIPT = FRONTEND_DIR / "nginx-trusted-proxies.sh"
TRUSTED_PROXIES_FILE = "chat-trusted-proxies.inc"
# The same for CHAT_OIDC_ISSUER: the file defines $chat_csp_oidc_origin, which the page's policy
# (the default of the template's CSP map) puts after connect-src 'self'.
OIDC_ORIGIN_SCRIPT = FRONTEND_DIR / "nginx-oidc-origin.sh"
OIDC_ORIGIN_FILE = "chat-oidc-origin.inc"
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


def write_trusted_proxies(conf_d: Path, trusted_proxies: str) -> subprocess.CompletedProcess[str]:
    """Run the image's start-up script, as its entrypoint does, writing into ``conf_d``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NGINX_TRUSTED_PROXIES": trusted_proxies,
        "NGINX_ENVSUBST_OUTPUT_DIR": str(conf_d),
    }
    return subprocess.run(
        ["sh", str(TRUSTED_PROXIES_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def write_oidc_origin(
    conf_d: Path, issuer: str, *, shell: Sequence[str] = ("sh",)
) -> subprocess.CompletedProcess[str]:
    """Run the image's other start-up script, as its entrypoint does, writing into ``conf_d``;
    ``shell`` runs it (the image's is BusyBox's ash: ``("busybox", "sh")``)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CHAT_OIDC_ISSUER": issuer,
        "NGINX_ENVSUBST_OUTPUT_DIR": str(conf_d),
    }
    return subprocess.run(
        [*shell, str(OIDC_ORIGIN_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def read_oidc_origin(conf_d: Path) -> str:
    """What the include that script wrote into ``conf_d`` gives $chat_csp_oidc_origin: empty,
    or a space and the issuer's origin."""
    text = (conf_d / OIDC_ORIGIN_FILE).read_text()
    pattern = r'^map "" \$chat_csp_oidc_origin \{\n    default "([^"]*)";\n\}$'
    match = re.search(pattern, text, re.MULTILINE)
    assert match, text
    return match.group(1)


@dataclass(kw_only=True)
class NginxProcess(abc.ABC):
    """One NGINX on a free port with all its files in ``workdir``; subclasses write what it
    serves (:meth:`write_snippet`), this class runs and stops it."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
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

    @abc.abstractmethod
    def write_snippet(self, conf_d: Path) -> Path:
        """Write the ``http {}``-level configuration into ``conf_d``; return its path."""

    def write_config(self) -> Path:
        """Write the snippet into ``conf.d/`` and a main config that includes it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf_d = self.workdir / "conf.d"
        conf_d.mkdir(exist_ok=True)
        snippet = self.write_snippet(conf_d)
        # Workers keep the uid of the master, as in nginx-unprivileged (uid 101 for both);
        # as root, NGINX would otherwise drop workers to "nobody", who cannot enter the
        # test's private temp folder.
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

    def start(self) -> Self:
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

    def __enter__(self) -> Self:
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


@dataclass(kw_only=True)
class NginxServer(NginxProcess):
    """NGINX with the rendered template, proxying to ``service_url``; logs in ``workdir``."""

    service_url: str
    frontend_root: Path = FRONTEND_DIR
    # The API key NGINX sends upstream (the file a Secret would provide), if any.
    upstream_api_key: str | None = None
    # NGINX_TRUSTED_PROXIES: the proxies in front whose X-Forwarded-For NGINX believes.
    trusted_proxies: str = ""
    # CHAT_OIDC_ISSUER: the issuer whose origin the page's policy admits (none by default).
    oidc_issuer: str = ""

    def write_snippet(self, conf_d: Path) -> Path:
        """Render the template as the image does, with the start-up scripts' include files."""
        snippet = conf_d / "chat-frontend.conf"
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
        script = write_trusted_proxies(conf_d, self.trusted_proxies)
        if script.returncode != 0:
            raise RuntimeError(f"{TRUSTED_PROXIES_SCRIPT.name} failed:\n{script.stderr}")
        script = write_oidc_origin(conf_d, self.oidc_issuer)
        if script.returncode != 0:
            raise RuntimeError(f"{OIDC_ORIGIN_SCRIPT.name} failed:\n{script.stderr}")
        if self.upstream_api_key is not None:
            auth = self.workdir / "chat-service" / "upstream-auth.conf"
            auth.parent.mkdir(exist_ok=True)
            auth.write_text(f'proxy_set_header Authorization "Bearer {self.upstream_api_key}";\n')
        return snippet

    def access_log(self) -> list[dict[str, Any]]:
        """The JSON access log lines written so far (each line must be one JSON object)."""
        if not self.access_log_path.exists():
            return []
        lines = self.access_log_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


INGRESS_SNIPPET = """\
server {{
    listen 127.0.0.1:{port};
    access_log off;
    location / {{
        proxy_pass {upstream};
        proxy_bind {source_address};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"""


@dataclass(kw_only=True)
class IngressNginx(NginxProcess):
    """A stand-in for an ingress controller: proxies everything to ``upstream_url`` (the
    template's NGINX) from its own address, ``source_address``, appending the client's
    address to X-Forwarded-For after whatever the client wrote there. Controllers that
    replace the header instead are the easier case; keeping it lets a test try to spoof
    through the hop. The source is a loopback address other than 127.0.0.1, so that the
    NGINX behind can trust this hop, and only it."""

    upstream_url: str
    source_address: str

    def write_snippet(self, conf_d: Path) -> Path:
        snippet = conf_d / "ingress.conf"
        snippet.write_text(
            INGRESS_SNIPPET.format(
                port=self.port, upstream=self.upstream_url, source_address=self.source_address
            )
        )
        return snippet
