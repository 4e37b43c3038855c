import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]


def _run_settings(env: dict) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL"}
    }
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "civicgrid.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_without_secret_key_is_a_clear_startup_error():
    result = _run_settings({"CIVICGRID_ENV": "production"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set when CIVICGRID_ENV=production" in result.stderr


def test_production_with_everything_set_starts():
    result = _run_settings(
        {
            "CIVICGRID_ENV": "production",
            "SECRET_KEY": "k" * 20 + "q7Zp0sVb3Lx9Wm2Rt6Yc8Nf1Hd5Jg4Ka" + "x" * 10,
            "ALLOWED_HOSTS": "grid.example.org",
            "DATABASE_URL": "postgres://u@127.0.0.1:5432/civicgrid",
        }
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(db):
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("SQLite settings only")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert settings.DATABASES["default"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_times_are_stored_in_utc_and_shown_in_shanghai():
    assert settings.USE_TZ is True
    assert settings.TIME_ZONE == "Asia/Shanghai"
