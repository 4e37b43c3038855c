"""``manage.py check --deploy`` passes under production settings, and would notice a regression."""

import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"


def _check_deploy(**extra_env: str) -> subprocess.CompletedProcess:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    # The test run's own environment minus what a deployment must not have
    # (the conftest allows unsafe async ORM calls for Playwright).
    dropped = {
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "DEBUG",
        "DJANGO_SETTINGS_MODULE",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    inherited = {k: v for k, v in os.environ.items() if k not in dropped}
    env = {
        **inherited,
        "DJANGO_SETTINGS_MODULE": "civicgrid.settings",
        "CIVICGRID_ENV": "production",
        "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(60)),
        "ALLOWED_HOSTS": "grid.example.org",
        "DATABASE_URL": LOCAL_POSTGRES,
        **extra_env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_check_deploy_passes_with_production_settings():
    result = _check_deploy()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_check_deploy_catches_an_insecure_production_setting():
    # The same check, with HTTPS redirection switched off, must fail: the
    # passing run above is not passing because nothing is checked.
    result = _check_deploy(SECURE_SSL_REDIRECT="false")
    assert result.returncode != 0
    assert "security.W008" in result.stdout + result.stderr
