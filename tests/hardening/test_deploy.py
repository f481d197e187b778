"""The deployment: `check --deploy` clean with the production settings as docker-compose runs
them, HTTPS behind a proxy, a web process without PyTorch, and the compose file and Dockerfile
that run it (read, since no Docker engine runs the tests)."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
STRONG_KEY = secrets.token_urlsafe(64)
_DEFAULTED = re.compile(r"\$\{(\w+):?[-?]([^}]*)\}")


def compose_environment() -> dict[str, str]:
    """The app's environment as docker-compose gives it with nothing set but the secret key:
    every `${NAME:-default}` at its default."""
    environment = {}
    for name, value in COMPOSE["x-app"]["environment"].items():
        environment[name] = _DEFAULTED.sub(lambda match: match.group(2), str(value))
    return {**environment, "DJANGO_SECRET_KEY": STRONG_KEY}


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_the_compose_defaults():
    env = {**compose_environment(), "DATABASE_URL": "sqlite:///:memory:"}
    result = run_python("import sys; from django.core.management import execute_from_command_line;"
                        " execute_from_command_line(['manage.py', 'check', '--deploy',"
                        " '--fail-level', 'WARNING'])", env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues (0 silenced)" in result.stdout


@pytest.mark.parametrize("key", ["short", "a" * 60, "django-insecure-" + "x1y2z3w4v5" * 5])
def test_production_refuses_a_weak_secret_key(key):
    result = run_python("import django; django.setup()",
                        {"DJANGO_SETTINGS_MODULE": "config.production", "DJANGO_SECRET_KEY": key})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is too weak" in result.stderr


_BEHIND_PROXY = """
import django
django.setup()
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

factory = RequestFactory()
ok = lambda request: HttpResponse("ok")
plain = factory.get("/classify/", HTTP_HOST="labels.example.org")
print("plain", SecurityMiddleware(ok)(plain).status_code, plain.is_secure())
proxied = factory.get("/classify/", HTTP_HOST="labels.example.org",
                      HTTP_X_FORWARDED_PROTO="https")
response = SecurityMiddleware(ok)(proxied)
print("proxied", response.status_code, proxied.is_secure(), "max-age" in response.get(
    "Strict-Transport-Security", ""))
health = factory.get("/api/health/", HTTP_HOST="127.0.0.1")
print("health", SecurityMiddleware(ok)(health).status_code)
secret = "a1B2" * 8
for origin in ("https://labels.example.org", "https://evil.example.com"):
    post = factory.post("/api/classifications/", HTTP_HOST="labels.example.org",
                        HTTP_X_FORWARDED_PROTO="https", HTTP_ORIGIN=origin,
                        HTTP_X_CSRFTOKEN=secret)
    post.COOKIES["csrftoken"] = secret
    refused = CsrfViewMiddleware(ok).process_view(post, ok, (), {})
    print("csrf", origin, "refused" if refused else "accepted")
"""


def test_behind_an_https_proxy_redirects_plain_http_and_trusts_the_named_origin():
    env = {**compose_environment(), "DATABASE_URL": "sqlite:///:memory:",
           "DJANGO_ALLOWED_HOSTS": "labels.example.org,127.0.0.1",
           "DJANGO_CSRF_TRUSTED_ORIGINS": "https://labels.example.org"}
    result = run_python(_BEHIND_PROXY, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "plain 301 False",  # plain HTTP is sent to HTTPS
        "proxied 200 True True",  # the proxy said HTTPS: served, with HSTS
        "health 200",  # container health checks ask over plain HTTP
        "csrf https://labels.example.org accepted",
        "csrf https://evil.example.com refused",
    ]


def test_the_web_process_never_imports_torch():
    code = ("import sys\n"
            "from config.wsgi import application\n"
            "from django.urls import get_resolver\n"
            "import config.celery\n"
            "get_resolver().url_patterns\n"
            "from django.test import Client\n"
            "print(Client().get('/api/health/').status_code)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'onnx', 'onnxruntime', 'onnxscript', 'safetensors')))\n")
    result = run_python(code, {"DJANGO_SETTINGS_MODULE": "config.settings",
                               "DATABASE_URL": "sqlite:///:memory:"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["200", "[]"]


# --- docker-compose.yml and the Dockerfile, read -------------------------------------------

LONG_RUNNING = ("db", "redis", "proxy", "web", "worker", "aggregation-worker", "training-worker",
                "scoring-worker", "beat")


def _service(name: str) -> dict:
    return COMPOSE["services"][name]


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_restarts_on_failure(name):
    assert _service(name)["restart"] in ("unless-stopped", "always", "on-failure")


def test_the_one_shot_migration_is_not_restarted():
    assert _service("migrate")["restart"] == "no"


def test_redis_keeps_its_queues_on_disk():
    command = _service("redis")["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert "--save" not in command or command[command.index("--save") + 1] != ""
    assert any(volume.endswith(":/data") for volume in _service("redis")["volumes"])
    assert "redisdata" in COMPOSE["volumes"]


def test_only_the_buffering_proxy_is_published_and_it_forwards_to_gunicorn():
    published = {name for name, service in COMPOSE["services"].items() if "ports" in service}
    assert published == {"proxy"}
    proxy = _service("proxy")
    assert proxy["image"].startswith("nginx")
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in proxy["volumes"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server web:8000;" in conf
    for directive in ("proxy_request_buffering on;", "proxy_buffering on;",
                      "client_header_timeout 10s;", "client_body_timeout 10s;",
                      "proxy_set_header X-Forwarded-Proto $forwarded_proto;"):
        assert directive in conf


def test_the_web_runs_the_torch_free_image_and_the_workers_the_cpu_one():
    for name in ("web", "migrate", "beat"):
        assert _service(name)["build"]["target"] == "web"
    for name in ("worker", "aggregation-worker", "training-worker", "scoring-worker"):
        assert _service(name)["build"]["target"] == "worker"
    assert "DJANGO_SECURE_COOKIES" not in COMPOSE["x-app"]["environment"]


def _stages(dockerfile: str) -> dict[str, str]:
    """Each build stage's instructions (comments left out), by the stage's name."""
    stages, name = {}, None
    for line in dockerfile.splitlines():
        match = re.match(r"FROM\s+\S+\s+AS\s+(\w+)", line, re.IGNORECASE)
        if match:
            name = match.group(1)
            stages[name] = ""
        elif name and not line.lstrip().startswith("#"):
            stages[name] += line + "\n"
    return stages


def _requirements(name: str) -> set[str]:
    names = set()
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            names |= _requirements(line[3:].strip())
        elif line:
            names.add(re.split(r"[=<>\[;]", line)[0].lower())
    return names


def test_the_web_image_has_no_torch_and_the_worker_image_the_cpu_build():
    stages = _stages((ROOT / "Dockerfile").read_text())
    assert set(stages) == {"web", "worker"}
    assert "requirements-web.txt" in stages["web"]
    assert "requirements.txt" not in stages["web"].replace("requirements-web.txt", "")
    assert not _requirements("requirements-web.txt") & {
        "torch", "onnx", "onnxruntime", "onnxscript", "safetensors"}
    torch_install = next(line for line in stages["worker"].splitlines() if "torch==" in line)
    assert "--index-url https://download.pytorch.org/whl/cpu" in torch_install
    assert stages["worker"].index("torch==") < stages["worker"].index("requirements.txt")
    assert {"torch", "onnxruntime"} <= _requirements("requirements.txt")
