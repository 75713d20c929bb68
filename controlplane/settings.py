"""Slipway settings, read from environment variables.

Every variable is documented in the README's configuration table. Defaults give the
embedded set-up (SQLite and a filesystem Celery broker under ``var/``), so
``make demo`` needs no services; production sets ``DATABASE_URL`` and
``CELERY_BROKER_URL`` (see docker-compose.yml and deploy/).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from controlplane.env import env_bool, env_int, env_json, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SLIPWAY_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "") or None
if SECRET_KEY is None:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY (or SECRET_KEY_FILE), "
            "or set DEBUG=1 for local development."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DEBUG=1"  # noqa: S105

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# The demo and the tests say plainly that the cluster and metrics are simulated.
DEMO_MODE = env_bool("SLIPWAY_DEMO", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "apps.core",
    "apps.audit",
    "apps.accounts",
    "apps.registry",
    "apps.gitops",
    "apps.notifications",
    "apps.releases",
    "apps.metrics",
    "apps.dashboards",
    "apps.evidence",
    "apps.demo",
]

MIDDLEWARE = [
    # First: counts and times every request, including those other middleware answer.
    "controlplane.prometheus.PrometheusMiddleware",
    "apps.core.request_id.RequestIdMiddleware",
    "apps.core.middleware.BodySizeLimitMiddleware",
    # After the size limit (what it reads is bounded), before anything reaches a view.
    "apps.core.middleware.UnstorableInputMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.core.security.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during sign-in into the
    # lockout page (apps.accounts.views.locked_out).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

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
                "apps.accounts.context_processors.roles",
                "apps.releases.context_processors.navigation",
                "apps.core.context_processors.deployment",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------
_default_db_url = f"sqlite:///{VAR_DIR / 'slipway.sqlite3'}"
DATABASE_URL = env_str("DATABASE_URL", _default_db_url)
try:
    _db = dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE makes every transaction take the write lock up front, so two writers
    # queue instead of both reading the same audit-chain head and one failing on upgrade.
    _db["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    _db["CONN_MAX_AGE"] = 0
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
elif _db["ENGINE"] == "django.db.backends.postgresql":
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
# Reviewers land on what waits for them, everyone else on the fleet (releases.views.landing).
LOGIN_REDIRECT_URL = "releases:landing"
LOGOUT_REDIRECT_URL = "login"

# --- sign-in: passwords, single sign-on, lockouts (docs/sign-in.md) ---------------------
# SLIPWAY_LOCAL_PASSWORDS=0 hides the password form and refuses password sign-in
# everywhere (the password backend is not installed), for SSO-only deployments.
SLIPWAY_LOCAL_PASSWORDS = env_bool("SLIPWAY_LOCAL_PASSWORDS", True)
# OpenID Connect (mozilla-django-oidc). On when OIDC_RP_CLIENT_ID is set. Endpoints come
# from the issuer's discovery document (OIDC_OP_ISSUER/.well-known/openid-configuration),
# read when first needed and cached; an OIDC_OP_*_ENDPOINT variable overrides one.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "")
OIDC_OP_ISSUER = env_str("OIDC_OP_ISSUER", "").rstrip("/")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_OP_END_SESSION_ENDPOINT = env_str("OIDC_OP_END_SESSION_ENDPOINT", "")
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
# The claim holding the person's groups, and what each group value grants:
# {"slipway-admins": "admin", "churn-reviewers": "product-reviewer@churn"}.
SLIPWAY_OIDC_GROUPS_CLAIM = env_str("SLIPWAY_OIDC_GROUPS_CLAIM", "groups")
SLIPWAY_OIDC_ROLE_MAP = env_json("SLIPWAY_OIDC_ROLE_MAP", {})
OIDC_TIMEOUT = env_int("OIDC_TIMEOUT_SECONDS", 10, minimum=1)
OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_SSL", True)
OIDC_USE_PKCE = True
OIDC_STORE_ID_TOKEN = True  # the id_token_hint of RP-initiated logout
OIDC_CREATE_USER = True
OIDC_USERNAME_ALGO = "apps.accounts.oidc_auth.username_from_claims"
OIDC_OP_LOGOUT_URL_METHOD = "apps.accounts.oidc_auth.provider_logout_url"
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out person or address before any password is checked.
    "axes.backends.AxesStandaloneBackend",
    *(["django.contrib.auth.backends.ModelBackend"] if SLIPWAY_LOCAL_PASSWORDS else []),
    *(["apps.accounts.oidc_auth.SlipwayOidcBackend"] if OIDC_ENABLED else []),
]
if not SLIPWAY_LOCAL_PASSWORDS and not OIDC_ENABLED:
    raise ImproperlyConfigured(
        "SLIPWAY_LOCAL_PASSWORDS=0 needs single sign-on: set OIDC_RP_CLIENT_ID (and the "
        "other OIDC_* variables), or nobody can sign in."
    )

# django-axes: after AXES_FAILURE_LIMIT failed sign-ins for one username from one
# address, that pair is locked for AXES_COOLOFF_SECONDS (0: until an admin unlocks it).
# The address is apps.core.client.client_address (REMOTE_ADDR unless proxies are trusted).
SLIPWAY_TRUSTED_PROXY_COUNT = env_int("SLIPWAY_TRUSTED_PROXY_COUNT", 0, minimum=0)
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
_axes_cooloff = env_int("AXES_COOLOFF_SECONDS", 900, minimum=0)
AXES_COOLOFF_TIME = timedelta(seconds=_axes_cooloff) if _axes_cooloff else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "apps.core.client.client_address"
AXES_LOCKOUT_CALLABLE = "apps.accounts.views.locked_out"
AXES_USERNAME_CALLABLE = "apps.accounts.views.lockout_username"
AXES_ENABLE_ADMIN = False  # apps.accounts.admin registers its own, with an audited unlock
AXES_VERBOSE = False
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"

# --- cache ----------------------------------------------------------------------------
# Shared by every process: API throttle counters and the OIDC discovery document. Redis in
# production (CACHE_URL=redis://host:6379/1); without it, each process keeps its own.
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "slipway"),
            "OPTIONS": {"socket_timeout": 2, "socket_connect_timeout": 2},
        }
    }
elif CACHE_URL:
    raise ImproperlyConfigured(f"CACHE_URL must be a redis:// URL, not {CACHE_URL.split(':')[0]}:")
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- i18n / static --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Outside DEBUG: hashed names (served with far-future, immutable cache headers by
    # whitenoise) and gzip copies, made by collectstatic. DEBUG serves from the finders.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# plotly.js ships inside the plotly wheel; it is served from there, never from a CDN.
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "apps.dashboards.staticfinders.PlotlyJsFinder",
]
WHITENOISE_USE_FINDERS = DEBUG

# --- request limits -------------------------------------------------------------------
# Bodies above this are refused with 413 before any view parses them.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 256 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

# --- security -------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.accounts.permissions.TokenScopePermission",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "apps.core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    # Counted in the default cache (CACHE_URL): one budget per client across processes.
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.core.throttling.UserRateThrottle",
        "apps.core.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "1200/min"),
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
    },
    # Only read if a throttle falls back to DRF's get_ident: never believe a
    # client-written X-Forwarded-For (apps.core.client).
    "NUM_PROXIES": SLIPWAY_TRUSTED_PROXY_COUNT,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Slipway API",
    "DESCRIPTION": "Releases, approvals, promotion and rollback of ML models, for CI pipelines.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery ---------------------------------------------------------------------------
_broker_dir = VAR_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    # kombu's transport with atomic message files (why: apps/core/broker_filesystem.py).
    CELERY_BROKER_TRANSPORT = "apps.core.broker_filesystem:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "control_folder": str(_broker_dir / "control"),
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
    }
else:
    # A task is redelivered if not acked within the visibility timeout; it must be
    # longer than the longest task (CELERY_TASK_TIME_LIMIT) or a slow deploy would run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30 if CELERY_TASK_TIME_LIMIT > 60 else None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
if CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 10**9) <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "CELERY_VISIBILITY_TIMEOUT must be longer than CELERY_TASK_TIME_LIMIT, "
        "or a running task is delivered again to another worker."
    )

# --- audit ----------------------------------------------------------------------------
# The audit chain is keyed (HMAC) with a secret the database does not hold, so someone
# who can write to the database cannot recompute a consistent chain after editing a row.
AUDIT_CHAIN_KEY = env_str("AUDIT_CHAIN_KEY", "") or f"audit-chain:{SECRET_KEY}"
# Anchors of the chain head outside the database (docs/integrity.md): an append-only file
# written by the checkpoint task, and the Audit-Anchor trailers of GitOps commits, read
# from AUDIT_ANCHOR_GIT_DIR (empty: the GitOps working clone, GITOPS_WORKDIR).
AUDIT_ANCHOR_FILE = Path(env_str("AUDIT_ANCHOR_FILE", str(VAR_DIR / "audit-anchors.log")))
AUDIT_ANCHOR_GIT_DIR = env_str("AUDIT_ANCHOR_GIT_DIR", "")
AUDIT_CHECKPOINT_SECONDS = env_int("AUDIT_CHECKPOINT_SECONDS", 900, minimum=10)
# Ed25519 key signing evidence packs: PEM, or the raw 32-byte seed in base64 (or *_FILE).
# Unset: packs cannot be made, except in demo mode, which keeps a generated key in VAR_DIR.
EVIDENCE_SIGNING_KEY = env_str("EVIDENCE_SIGNING_KEY", "")

# --- releases -------------------------------------------------------------------------
# Reasons and comments are free text from people; cap them so a paste cannot bloat rows.
RELEASE_TEXT_MAX_LENGTH = env_int("RELEASE_TEXT_MAX_LENGTH", 4000, minimum=100)

# --- GitOps repository ----------------------------------------------------------------
# Where manifests are committed. The embedded default is a local bare repository made
# from gitops-repo-template/ by `make demo`. Credentials never live in the database:
# an SSH key file, or an HTTPS token (GITOPS_HTTPS_TOKEN or GITOPS_HTTPS_TOKEN_FILE).
GITOPS_REPO_URL = env_str("GITOPS_REPO_URL", "")
GITOPS_BRANCH = env_str("GITOPS_BRANCH", "main")
GITOPS_WORKDIR = Path(env_str("GITOPS_WORKDIR", str(VAR_DIR / "gitops-clone")))
GITOPS_AUTHOR_NAME = env_str("GITOPS_AUTHOR_NAME", "Slipway")
GITOPS_AUTHOR_EMAIL = env_str("GITOPS_AUTHOR_EMAIL", "slipway@localhost")
GITOPS_SSH_KEY_FILE = env_str("GITOPS_SSH_KEY_FILE", "")
GITOPS_SSH_KNOWN_HOSTS_FILE = env_str("GITOPS_SSH_KNOWN_HOSTS_FILE", "")  # pins host keys
GITOPS_HTTPS_TOKEN = env_str("GITOPS_HTTPS_TOKEN", "")
GITOPS_PUSH_MAX_ATTEMPTS = env_int("GITOPS_PUSH_MAX_ATTEMPTS", 8, minimum=1)
GITOPS_TIMEOUT_SECONDS = env_int("GITOPS_TIMEOUT_SECONDS", 60, minimum=1)

# --- cluster: Argo CD and Kubernetes ---------------------------------------------------
# CLUSTER_BACKEND: "kubernetes" reads Argo CD Application objects through the Kubernetes
# API; "demo" is the demo cluster simulator (make demo), and the UI says so.
CLUSTER_BACKEND = env_str("CLUSTER_BACKEND", "demo" if DEMO_MODE else "kubernetes")
KUBE_API_URL = env_str("KUBE_API_URL", "")  # with KUBE_TOKEN; else KUBECONFIG or in-cluster
KUBE_TOKEN = env_str("KUBE_TOKEN", "")
KUBE_CA_FILE = env_str("KUBE_CA_FILE", "")
KUBE_VERIFY_TLS = env_bool("KUBE_VERIFY_TLS", True)
KUBECONFIG = env_str("KUBECONFIG", "")
ARGOCD_NAMESPACE = env_str("ARGOCD_NAMESPACE", "argocd")
ARGOCD_API_URL = env_str("ARGOCD_API_URL", "")  # optional: ask Argo CD to refresh now
ARGOCD_TOKEN = env_str("ARGOCD_TOKEN", "")
ARGOCD_VERIFY_TLS = env_bool("ARGOCD_VERIFY_TLS", True)
CLUSTER_TIMEOUT_SECONDS = env_int("CLUSTER_TIMEOUT_SECONDS", 10, minimum=1)
# A release that is not Synced+Healthy this long after its commit is marked failed.
ROLLOUT_TIMEOUT_SECONDS = env_int("ROLLOUT_TIMEOUT_SECONDS", 900, minimum=10)
STATUS_POLL_SECONDS = env_int("STATUS_POLL_SECONDS", 10, minimum=1)
# Demo cluster simulator: seconds after a commit before it reports Synced and Healthy.
DEMO_SYNC_DELAY_SECONDS = env_int("DEMO_SYNC_DELAY_SECONDS", 4, minimum=0)

# --- MLflow model registry -------------------------------------------------------------
MLFLOW_TRACKING_URI = env_str(
    "MLFLOW_TRACKING_URI", f"sqlite:///{VAR_DIR / 'mlflow' / 'mlflow.db'}"
)
MLFLOW_UI_URL = env_str("MLFLOW_UI_URL", "")  # links to runs on the model card when set
MLFLOW_TIMEOUT_SECONDS = env_int("MLFLOW_TIMEOUT_SECONDS", 10, minimum=1)
REGISTRY_SYNC_SECONDS = env_int("REGISTRY_SYNC_SECONDS", 60, minimum=5)
# MLflow moves some things without bumping a model's timestamp (version tags, metrics
# logged after registration); a full re-read this often catches them.
REGISTRY_FULL_RESYNC_SECONDS = env_int("REGISTRY_FULL_RESYNC_SECONDS", 86400, minimum=300)
# MLflow 3 sends usage telemetry unless told not to; a control plane phones no one home.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# --- metrics -------------------------------------------------------------------------
# METRICS_BACKEND: "prometheus" (PROMETHEUS_URL) or "demo" (the simulator).
METRICS_BACKEND = env_str("METRICS_BACKEND", "demo" if DEMO_MODE else "prometheus")
PROMETHEUS_URL = env_str("PROMETHEUS_URL", "http://127.0.0.1:9090")
PROMETHEUS_TIMEOUT_SECONDS = env_int("PROMETHEUS_TIMEOUT_SECONDS", 10, minimum=1)
METRICS_POLL_SECONDS = env_int("METRICS_POLL_SECONDS", 30, minimum=5)
# Data older than this counts as stale (banner on the pages). Unset (None): three poll
# periods, derived where it is read (apps/metrics/conf.py) so it follows the poll period.
METRICS_STALE_AFTER_SECONDS = env_int("METRICS_STALE_AFTER_SECONDS", 0, minimum=0) or None
PROMETHEUS_TOKEN = env_str("PROMETHEUS_TOKEN", "")  # for a Prometheus behind an auth proxy
PROMETHEUS_VERIFY_TLS = env_bool("PROMETHEUS_VERIFY_TLS", True)
# PromQL: replace default templates ({"latency": "..."}), or per "<env>/<runtime>" key
# ("prod/*", "*/kserve-sklearn"); defaults and placeholders are in docs/metrics.md.
# Read the series deploy/prometheus/slipway-recording-rules.yml records (large fleets).
METRICS_RECORDING_RULES = env_bool("METRICS_RECORDING_RULES", False)
METRICS_PROMQL = env_json("METRICS_PROMQL", {})
METRICS_PROMQL_OVERRIDES = env_json("METRICS_PROMQL_OVERRIDES", {})
METRICS_REQUEST_WINDOW = env_str("METRICS_REQUEST_WINDOW", "5m")
METRICS_DRIFT_WINDOW = env_str("METRICS_DRIFT_WINDOW", "30m")
METRICS_DRIFT_MIN_COUNT = env_int("METRICS_DRIFT_MIN_COUNT", 100, minimum=1)
# Cost: "kubernetes" (pod requests x METRICS_PRICES per hour), "opencost", or "" (off).
METRICS_COST_BACKEND = env_str("METRICS_COST_BACKEND", "kubernetes")
METRICS_PRICES = env_json("METRICS_PRICES", {})  # {"cpu_core_hour": .., "memory_gib_hour": ..}
METRICS_OPENCOST_URL = env_str("METRICS_OPENCOST_URL", "")
METRICS_SLO_BREACH_POLLS = env_int("METRICS_SLO_BREACH_POLLS", 3, minimum=1)
METRICS_SLO_RECOVERY_POLLS = env_int("METRICS_SLO_RECOVERY_POLLS", 3, minimum=1)
METRICS_RAW_RETENTION_DAYS = env_int("METRICS_RAW_RETENTION_DAYS", 14, minimum=1)
METRICS_ROLLUP_5M_RETENTION_DAYS = env_int("METRICS_ROLLUP_5M_RETENTION_DAYS", 90, minimum=1)
METRICS_ROLLUP_1H_RETENTION_DAYS = env_int("METRICS_ROLLUP_1H_RETENTION_DAYS", 730, minimum=1)

# --- notifications (docs/notifications.md) ------------------------------------------------
# The address people reach Slipway at: every notification links to a page under it.
SLIPWAY_PUBLIC_URL = env_str("SLIPWAY_PUBLIC_URL", "http://localhost:8000")
# Shared secret of the generic webhook signature (or NOTIFICATIONS_WEBHOOK_SECRET_FILE).
NOTIFICATIONS_WEBHOOK_SECRET = env_str("NOTIFICATIONS_WEBHOOK_SECRET", "")
NOTIFICATIONS_TIMEOUT_SECONDS = env_int("NOTIFICATIONS_TIMEOUT_SECONDS", 10, minimum=1)
# A worker holds a delivery this long; one that dies mid-send is retried after it runs out.
NOTIFICATIONS_LEASE_SECONDS = env_int("NOTIFICATIONS_LEASE_SECONDS", 120, minimum=1)
# 10 attempts 30 s, 1, 2, 4 ... min apart (at most an hour): about three hours in all.
NOTIFICATIONS_MAX_ATTEMPTS = env_int("NOTIFICATIONS_MAX_ATTEMPTS", 10, minimum=1)
NOTIFICATIONS_BACKOFF_BASE_SECONDS = env_int("NOTIFICATIONS_BACKOFF_BASE_SECONDS", 30, minimum=1)
NOTIFICATIONS_BACKOFF_CAP_SECONDS = env_int("NOTIFICATIONS_BACKOFF_CAP_SECONDS", 3600, minimum=1)
NOTIFICATIONS_SWEEP_SECONDS = env_int("NOTIFICATIONS_SWEEP_SECONDS", 15, minimum=1)
# A first attempt not made this long after commit is taken as a lost message.
NOTIFICATIONS_SWEEP_GRACE_SECONDS = env_int("NOTIFICATIONS_SWEEP_GRACE_SECONDS", 60, minimum=0)
# E-mail: Django's SMTP backend with these settings (the demo writes files to var/mail/).
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend"
    if DEMO_MODE
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = str(VAR_DIR / "mail")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "slipway@localhost")

# --- periodic tasks (Celery beat) ---------------------------------------------------------
# Each entry expires after one period: a backlog of stale polls is dropped, not replayed.
CELERY_BEAT_SCHEDULE = {
    "releases.follow_rollouts": {
        "task": "releases.follow_rollouts",
        "schedule": float(STATUS_POLL_SECONDS),
        "options": {"expires": float(STATUS_POLL_SECONDS)},
    },
    "registry.sync": {
        "task": "registry.sync",
        "schedule": float(REGISTRY_SYNC_SECONDS),
        "options": {"expires": float(REGISTRY_SYNC_SECONDS)},
    },
    "metrics.poll": {
        "task": "metrics.poll",
        "schedule": float(METRICS_POLL_SECONDS),
        "options": {"expires": float(METRICS_POLL_SECONDS)},
    },
    "metrics.rollup": {"task": "metrics.rollup", "schedule": 60.0, "options": {"expires": 60.0}},
    "metrics.retention": {
        "task": "metrics.retention",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
    "registry.retry_alias_updates": {
        "task": "registry.retry_alias_updates",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "notifications.sweep": {
        "task": "notifications.sweep",
        "schedule": float(NOTIFICATIONS_SWEEP_SECONDS),
        "options": {"expires": float(NOTIFICATIONS_SWEEP_SECONDS)},
    },
    "audit.checkpoint": {
        "task": "audit.checkpoint",
        "schedule": float(AUDIT_CHECKPOINT_SECONDS),
        "options": {"expires": float(AUDIT_CHECKPOINT_SECONDS)},
    },
}

# --- Slipway's own monitoring and browser security ------------------------------------
READINESS_TIMEOUT_SECONDS = env_int("READINESS_TIMEOUT_SECONDS", 3, minimum=1)
READINESS_GIT_CACHE_SECONDS = env_int("READINESS_GIT_CACHE_SECONDS", 30, minimum=0)
# /metrics wants "Authorization: Bearer <METRICS_TOKEN>" (or the token in METRICS_TOKEN_FILE).
# Without a token it answers 401, unless METRICS_PUBLIC=1 opens it on purpose: request
# counts and release states are not for anonymous callers by default.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", False)
CSP_REPORT_ONLY = env_bool("CSP_REPORT_ONLY", False)
CSP_REPORT_URI = env_str("CSP_REPORT_URI", "")

# --- logging --------------------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.core.request_id.RequestIdLogFilter"},
        "client_error_one_line": {"()": "apps.core.logging.ClientErrorWithoutTraceback"},
    },
    "formatters": {
        "json": {"()": "apps.core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": env_str("LOG_FORMAT", "plain" if DEBUG else "json"),
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's own default adds a second console handler to "django" under DEBUG,
        # which printed every request error twice: the root handler is the only one.
        "django": {"handlers": [], "propagate": True},
        "django.request": {"filters": ["client_error_one_line"]},
        "django.db.backends": {"level": "WARNING"},
        "git": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
