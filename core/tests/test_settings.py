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


def _database_options(env: dict) -> str:
    base = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from civicgrid import settings as s; print(sorted(s.DATABASES['default']"
            ".get('OPTIONS', {}).items()))",
        ],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_postgres_binds_on_the_server_and_reuses_plans_unless_told_not_to():
    url = {"DATABASE_URL": "postgres://u@127.0.0.1:5432/civicgrid"}
    options = _database_options(url)
    assert "('prepare_threshold', 5)" in options and "('server_side_binding', True)" in options
    off = _database_options({**url, "DATABASE_PREPARE_THRESHOLD": "off"})
    assert "prepare_threshold" not in off and "server_side_binding" not in off
    assert "server_side_binding" not in _database_options({"DATABASE_URL": ""})  # SQLite


def test_the_running_postgres_connection_prepares_repeated_statements(db):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 5
