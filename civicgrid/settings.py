"""CivicGrid settings, read from the environment.

Development (the default) needs no configuration at all: an SQLite file in WAL
mode under ``var/``. Production is switched on with ``CIVICGRID_ENV=production``
and then refuses to start while a secret it needs is missing.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CIVICGRID_VAR_DIR", BASE_DIR / "var"))

ENV = os.environ.get("CIVICGRID_ENV", "development").strip().lower()
if ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(
        f"CIVICGRID_ENV must be development, production or test, not {ENV!r}."
    )
PRODUCTION = ENV == "production"


def _env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {raw!r}.")


def _env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _env_pairs(name: str) -> dict[str, str]:
    """``"a=1,b=2"`` → ``{"a": "1", "b": "2"}``; empty or unset → ``{}``."""
    pairs = {}
    for item in _env_list(name, []):
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ImproperlyConfigured(f"{name} takes id=code pairs, not {item!r}.")
        pairs[key.strip()] = value.strip()
    return pairs


def _required(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ImproperlyConfigured(
            f"{name} must be set when CIVICGRID_ENV=production (see README, Configuration)."
        )
    return value


if PRODUCTION:
    SECRET_KEY = _required("SECRET_KEY")
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 random characters.")
    ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        _required("ALLOWED_HOSTS")
    _required("DATABASE_URL")
    DEBUG = _env_bool("DEBUG", False)
else:
    SECRET_KEY = os.environ.get(
        "SECRET_KEY", "dev-only-insecure-key-civicgrid-do-not-use-in-production-0123456789"
    )
    ALLOWED_HOSTS = _env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver", "[::1]"])
    DEBUG = _env_bool("DEBUG", ENV == "development")

CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "django_tasks",
    "django_tasks_db",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "core",
    "accounts",
    "geo",
    "cases",
    "portal",
    "open311",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Request id and client IP first, so every audit entry of the request has them.
    "accounts.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a lockout flagged during sign-in into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "civicgrid.urls"
WSGI_APPLICATION = "civicgrid.wsgi.application"
ASGI_APPLICATION = "civicgrid.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
                "core.context_processors.civicgrid",
                "accounts.context_processors.security",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# SQLite runs in WAL mode and opens every transaction with BEGIN IMMEDIATE, so
# two writers queue on the lock instead of failing half-way with "database is
# locked" when one of them upgrades a read to a write.
SQLITE_PATH = Path(os.environ.get("SQLITE_PATH", VAR_DIR / "civicgrid.sqlite3"))
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL;"
        "PRAGMA synchronous=NORMAL;"
        "PRAGMA foreign_keys=ON;"
        "PRAGMA busy_timeout=20000;"
    ),
}

_database_url = os.environ.get("DATABASE_URL", "").strip()
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=60)}
    # PostgreSQL plans a statement the fifth time a connection runs it and then reuses
    # the plan: parameters are bound on the server, so the text repeats exactly.
    # Planning costs more than running most of CivicGrid's statements (a report's
    # duplicate check weighs every index of the cases). Behind a pooler that cannot
    # keep prepared statements (PgBouncer in transaction mode before 1.21), set
    # DATABASE_PREPARE_THRESHOLD=off.
    _prepare = os.environ.get("DATABASE_PREPARE_THRESHOLD", "5").strip().lower()
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _prepare != "off":
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            server_side_binding=True, prepare_threshold=int(_prepare)
        )
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": SQLITE_PATH}}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    DATABASES["default"].setdefault("TEST", {})
    # A file, not :memory:, so that tests can start a second process that sees
    # the same test database (index invalidation, races between workers).
    DATABASES["default"]["TEST"].setdefault(
        "NAME", os.environ.get("SQLITE_TEST_PATH", str(VAR_DIR / "test_civicgrid.sqlite3"))
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Membership's unique constraint treats NULL departments as equal; SQLite
# cannot say so in the constraint, so the service checks it there.
SILENCED_SYSTEM_CHECKS = ["models.W047"]
AUTH_USER_MODEL = "accounts.User"

# --- Passwords, sign-in and sessions ------------------------------------------
# Argon2 for every new or changed password; the PBKDF2 entries stay so that a
# password hashed before the switch still verifies (and is rehashed on sign-in).
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    # Django's list of 20,000 common (and so breached) passwords; no network lookup.
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Axes first: it refuses a locked-out sign-in before any password is checked.
# The standalone variant, so permission checks are not run twice (ModelBackend
# follows); roles held through memberships answer has_perm last.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "accounts.backends.RolePermissionBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# Lockout: 5 failed sign-ins for the same username from the same IP address
# lock that pair for 15 minutes, counted from the latest failure (a try during
# the lockout starts the 15 minutes again). Locking the pair rather than the
# username alone keeps an attacker from locking a colleague out from elsewhere.
# The refusal is HTTP 429 with accounts/locked_out.html.
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "accounts.middleware.axes_client_ip"
AXES_VERBOSE = False

# Two-factor (TOTP): required for admins, optional for other staff.
OTP_TOTP_ISSUER = "CivicGrid"
OTP_LOGIN_URL = "account_2fa_verify"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = int(os.environ.get("SESSION_COOKIE_AGE", str(12 * 3600)))
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Internationalisation -------------------------------------------------
LANGUAGE_CODE = os.environ.get("LANGUAGE_CODE", "zh-hans")
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
USE_TZ = True
TIME_ZONE = os.environ.get("TIME_ZONE", "Asia/Shanghai")

# --- Static and media -----------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
NODE_MODULES = BASE_DIR / "node_modules"
# Front-end libraries come from the npm registry (package.json) and are served
# straight out of node_modules; nothing third-party is committed.
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/leaflet", NODE_MODULES / "leaflet" / "dist"),
    ("vendor/echarts", NODE_MODULES / "echarts" / "dist"),
]
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- API --------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its "Bearer" challenge makes a missing or bad credential a 401.
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CivicGrid API",
    "DESCRIPTION": "Grid-based city management: areas and grids, locate, import and export.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Background tasks -------------------------------------------------------
TASKS = {
    "default": {
        "BACKEND": os.environ.get("TASKS_BACKEND", "django_tasks_db.DatabaseBackend"),
    }
}

# --- Caches -------------------------------------------------------------------
_redis_url = os.environ.get("REDIS_URL", "").strip()
if _redis_url:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _redis_url,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- CivicGrid ------------------------------------------------------------------
CIVICGRID = {
    # Tile layer for every map. Empty: polygons draw on a plain background
    # (offline). Examples: OpenStreetMap
    # "https://tile.openstreetmap.org/{z}/{x}/{y}.png", AMap, Tianditu.
    "MAP_TILE_URL": os.environ.get("MAP_TILE_URL", ""),
    "MAP_TILE_ATTRIBUTION": os.environ.get("MAP_TILE_ATTRIBUTION", ""),
    # Every process re-checks the area version at most this often, so an area
    # change made anywhere reaches its point-to-grid index within this time.
    "GEO_INDEX_MAX_STALENESS": float(os.environ.get("GEO_INDEX_MAX_STALENESS", "1.0")),
    "LOCATE_BATCH_LIMIT": 10_000,
    # Every process keeps the classes, time limits and routing rules in memory and
    # re-checks their version at most this often; a change made by the admin reaches
    # every process within this time. A write that bypasses the model signals is
    # picked up at the latest after RULES_MAX_AGE seconds.
    "RULES_MAX_STALENESS": float(os.environ.get("RULES_MAX_STALENESS", "1.0")),
    "RULES_MAX_AGE": float(os.environ.get("RULES_MAX_AGE", "300")),
    # A closed case may be reopened for this many days after closing.
    "CASE_REOPEN_DAYS": int(os.environ.get("CASE_REOPEN_DAYS", "7")),
    # A reporter's name, phone and e-mail are erased this many days after the
    # case is finished (closed, voided or merged).
    "REPORTER_RETENTION_DAYS": int(os.environ.get("REPORTER_RETENTION_DAYS", "180")),
    # A resident's case waits this many days for the resident's rating, then
    # closes as satisfied by default; after this many unsatisfied rounds it is
    # also escalated one level.
    "RATING_DAYS": int(os.environ.get("RATING_DAYS", "7")),
    "UNSATISFIED_ESCALATE_AFTER": int(os.environ.get("UNSATISFIED_ESCALATE_AFTER", "2")),
    # Public writes (portal, Open311): (hits, seconds) per client address, per
    # account, and a short burst limit per address; over them answers 429.
    "PUBLIC_RATE_LIMITS": {"ip": (20, 3600), "account": (30, 3600), "burst": (5, 60)},
    # An Open311 client posts for many residents from one address; its key has
    # its own per-minute limit on top.
    "PUBLIC_RATE_LIMITS_BY_SCOPE": {"open311.post": {"ip": (2000, 3600), "burst": (120, 60)}},
    # Open311 GeoReport v2 (open311, docs/open311.md): jurisdiction_id → the code of
    # the area it serves (env "yunxi.example.gov.cn=510177,…"). With none, the
    # endpoint serves every area and takes no jurisdiction_id; with several, a
    # client must name one. Discovery's contact and key_service texts; the
    # hits per client address per window of the public reads (no API key).
    "OPEN311_JURISDICTIONS": _env_pairs("OPEN311_JURISDICTIONS"),
    "OPEN311_CONTACT": os.environ.get("OPEN311_CONTACT", ""),
    "OPEN311_KEY_SERVICE": os.environ.get("OPEN311_KEY_SERVICE", ""),
    "OPEN311_READ_LIMIT": (120, 60),
    # An anonymous portal report carries a proof of work: a SHA-256 with this many
    # leading zero bits (16: about 65,000 hashes, a second or two in a browser).
    "PORTAL_CHALLENGE_BITS": int(os.environ.get("PORTAL_CHALLENGE_BITS", "16")),
    # How long an issued challenge stays valid (seconds).
    "PORTAL_CHALLENGE_TTL": int(os.environ.get("PORTAL_CHALLENGE_TTL", "900")),
    # Addresses (or networks, e.g. "10.0.0.0/8") of reverse proxies whose
    # X-Forwarded-For is believed. Empty: the peer address is the client.
    "TRUSTED_PROXIES": _env_list("TRUSTED_PROXIES", []),
    # The work calendar (core.calendar): working periods of every working day,
    # local time, and the weekdays that are weekend (0 = Monday). Holidays and
    # swapped working days come from the holidays package and the overrides.
    "WORK_HOURS": [("08:30", "12:00"), ("13:30", "17:30")],
    "WEEKEND": [5, 6],
    # Every process re-checks the calendar overrides' version at most this often.
    "CALENDAR_MAX_STALENESS": 1.0,
    # Photos of cases (cases.photos): the largest file accepted, in bytes, and the
    # most pixels an image may have; a larger one (a decompression bomb) is refused
    # from its header, before it is decoded. (Pillow itself refuses more than
    # about 179 megapixels whatever this says.) Uploads over Django's 2.5 MB
    # FILE_UPLOAD_MAX_MEMORY_SIZE are spooled to temporary files, not memory;
    # cap the whole request body at the reverse proxy (9 photos and a form).
    "PHOTO_MAX_BYTES": int(os.environ.get("PHOTO_MAX_BYTES", str(10 * 1024 * 1024))),
    "PHOTO_MAX_PIXELS": int(os.environ.get("PHOTO_MAX_PIXELS", "40000000")),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
