"""Settings from the environment, and the pure modules' independence from Django."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SECRET_KEY",)}
    environment.update(env)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_production_settings_refuse_to_start_without_a_secret_key():
    result = run_python("import django; django.setup()",
                        DJANGO_SETTINGS_MODULE="config.production")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_settings_start_with_a_secret_key():
    result = run_python(
        "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        DJANGO_SETTINGS_MODULE="config.production", DJANGO_SECRET_KEY="0123456789abcdef" * 4,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_nothing_set_means_sqlite_and_eager_celery():
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER)")
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
                            timeout=120)
    assert result.stdout.split() == ["django.db.backends.sqlite3", "True"], result.stderr


def test_database_and_broker_urls_switch_to_postgresql_and_redis():
    code = ("import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_TASK_ALWAYS_EAGER, "
            "settings.CELERY_BROKER_URL)")
    result = run_python(code, DJANGO_SETTINGS_MODULE="config.settings",
                        DATABASE_URL="postgres://u@127.0.0.1:5432/x",
                        CELERY_BROKER_URL="redis://127.0.0.1:6379/0")
    assert result.stdout.split() == [
        "django.db.backends.postgresql", "False", "redis://127.0.0.1:6379/0"], result.stderr


@pytest.mark.parametrize(
    "module",
    ["labeling.records", "labeling.rules", "labeling.stamps", "labeling.rendering",
     "labeling.ingest", "simulation.triplets"],
)
def test_pure_modules_never_import_django(module):
    result = run_python(f"import sys, {module}; print('django' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
