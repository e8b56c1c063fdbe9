"""ParkWatch settings: one module, driven by environment variables only.

Every setting has a default that makes `make run` work with nothing set: SQLite, Kombu's
filesystem broker and local media, all under `var/`. README.md lists every variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab

from webapp.storage_settings import local_storages, s3_storages

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """A string setting; `NAME_FILE` (a path to a secret file) wins over `NAME`."""
    secret_file = os.environ.get(f"{name}_FILE")
    if secret_file:
        return Path(secret_file).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


VAR_DIR = BASE_DIR / env("PARKWATCH_VAR_DIR", "var")  # relative paths are from the checkout
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
# The default key only exists so that `make run` works out of the box; production refuses it.
_DEV_SECRET_KEY = "parkwatch-insecure-development-key-change-me"  # noqa: S105
SECRET_KEY = env("SECRET_KEY", _DEV_SECRET_KEY)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
USE_X_FORWARDED_HOST = env_bool("USE_X_FORWARDED_HOST", False)
if env_bool("SECURE_PROXY_SSL", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "observations",
    "classifier",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "webapp.database_unavailable.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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
                "observations.context_processors.parkwatch",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise (postgres://... in production).
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'parkwatch.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server and the worker process read while the other writes.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not pytest's shared in-memory database: worker processes started by the tests
    # must see the same data, and SQLite's busy timeout only works between connections to a file.
    # One file per test run, so concurrent runs on one checkout do not collide.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "my-sightings"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = env("LANGUAGE_CODE", "en")
TIME_ZONE = env("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
# Used for an EXIF time without an offset when the sighting is outside every park.
PARKWATCH_DEFAULT_TIMEZONE = env("PARKWATCH_DEFAULT_TIMEZONE", "Europe/Madrid")

# Redis, when given, is the broker, the cache (throttles) and the result backend.
REDIS_URL = env("REDIS_URL")

# Files. Originals are private (never served); derivatives are public (re-encoded, no EXIF).
STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = env("MEDIA_URL", "/media/")
MEDIA_ROOT = Path(env("MEDIA_ROOT", str(VAR_DIR / "media")))
PRIVATE_MEDIA_ROOT = Path(env("PRIVATE_MEDIA_ROOT", str(VAR_DIR / "private")))
MODELS_ROOT = Path(env("MODELS_ROOT", str(VAR_DIR / "models")))
# Workers copy weights from storage here (by sha256) before loading them.
MODEL_CACHE_DIR = Path(env("MODEL_CACHE_DIR", str(VAR_DIR / "model-cache")))
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES = s3_storages(
        bucket=AWS_STORAGE_BUCKET_NAME,
        endpoint_url=env("AWS_S3_ENDPOINT_URL"),
        public_endpoint_url=env("AWS_S3_PUBLIC_ENDPOINT_URL"),
        region_name=env("AWS_S3_REGION_NAME"),
        access_key=env("AWS_ACCESS_KEY_ID"),
        secret_key=env("AWS_SECRET_ACCESS_KEY"),
        addressing_style=env("AWS_S3_ADDRESSING_STYLE"),
        querystring_expire=env_int("AWS_QUERYSTRING_EXPIRE", 3600),
        connect_timeout=env_float("AWS_S3_CONNECT_TIMEOUT", 5),
        read_timeout=env_float("AWS_S3_READ_TIMEOUT", 60),
    )
else:
    STORAGES = local_storages(private_root=PRIVATE_MEDIA_ROOT, models_root=MODELS_ROOT)
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
# WhiteNoise serves static files in every process; without `collectstatic` it finds them in
# place (make run), production images collect them at build time.
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", True)
# MEDIA_URL/<name> of a public derivative: the file itself from the local folder (make run);
# with S3 a redirect to a fresh signed URL (pages link signed URLs directly; exports, whose
# links must outlive any signature, link these addresses).
SERVE_MEDIA = env_bool("SERVE_MEDIA", True)

# Uploads: limits a photo must keep. The request limit sits above five full photos.
PHOTO_MAX_BYTES = env_int("PHOTO_MAX_BYTES", 25 * 1024 * 1024)
PHOTO_MAX_PIXELS = env_int("PHOTO_MAX_PIXELS", 50_000_000)
PHOTO_MAX_COUNT = env_int("PHOTO_MAX_COUNT", 5)
PHOTO_PUBLIC_MAX_SIDE = env_int("PHOTO_PUBLIC_MAX_SIDE", 2048)
PHOTO_THUMBNAIL_SIDE = env_int("PHOTO_THUMBNAIL_SIDE", 320)
# Two photos whose 64-bit perceptual hashes differ in at most this many bits are near-identical
# (found through four indexed 16-bit bands, so values up to 3 are searched exhaustively).
PHOTO_NEAR_DUPLICATE_BITS = env_int("PHOTO_NEAR_DUPLICATE_BITS", 3)
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FILES = PHOTO_MAX_COUNT + 5
ALLOW_ANONYMOUS_UPLOADS = env_bool("ALLOW_ANONYMOUS_UPLOADS", True)
UPLOAD_RATE = env("UPLOAD_RATE", "60/hour")

# Map tiles for the Leaflet maps (any XYZ tile server; nothing else is loaded from outside).
MAP_TILE_URL = env("MAP_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
MAP_TILE_ATTRIBUTION = env(
    "MAP_TILE_ATTRIBUTION",
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>',
)

# Cache: local memory by default (one process), Redis when REDIS_URL is set.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            # A Redis that hangs (not just refuses) must not hang the upload: the throttle then
            # counts in process memory (observations/throttling.py).
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Email: printed to the console unless an SMTP host is given.
EMAIL_HOST = env("EMAIL_HOST")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "ParkWatch <parkwatch@localhost>")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "observations.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "uploads": UPLOAD_RATE,
        "identify": env("IDENTIFY_RATE", "120/hour"),
    },
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "NUM_PROXIES": env_int("NUM_PROXIES", 0) if os.environ.get("NUM_PROXIES") else None,
    "TEST_REQUEST_DEFAULT_FORMAT": "multipart",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ParkWatch API",
    "DESCRIPTION": "Sightings of invasive species: upload, AI suggestions, expert review, exports.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and Redoc are served from the installed sidecar package, never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Celery. Queues: inference (TensorFlow), training (TensorFlow, one at a time), default.
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 600)
CELERY_TRAINING_TIME_LIMIT = env_int("CELERY_TRAINING_TIME_LIMIT", 6 * 3600)
CELERY_TRAINING_SOFT_TIME_LIMIT = env_float(
    "CELERY_TRAINING_SOFT_TIME_LIMIT", CELERY_TRAINING_TIME_LIMIT - 60
)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Above the longest hard time limit, so a late-acked task is never delivered twice.
        "visibility_timeout": CELERY_TRAINING_TIME_LIMIT + 3600,
        # A Redis that hangs without closing the connection fails a publish after this many
        # seconds instead of holding the upload forever (the sweeper re-enqueues it).
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
    }
    # A publish that waits for a result (identify) first subscribes to it: with Redis down,
    # give up after about a second (Celery's default retries for ~20 s, inside the request).
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.5},
    }
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "results").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{VAR_DIR / 'results'}"
CELERY_BROKER_URL = env("CELERY_BROKER_URL", CELERY_BROKER_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "classifier.tasks.classify_*": {"queue": "inference"},
    "classifier.tasks.sweep_*": {"queue": "default"},
    "classifier.tasks.start_scheduled_training": {"queue": "default"},
    "classifier.tasks.identify_*": {"queue": "inference"},
    "classifier.tasks.train_*": {"queue": "training"},
}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
# Past the soft limit a task gets SoftTimeLimitExceeded and ends cleanly (claimed sightings go
# back to the queue, a training run is marked failed); the hard limit kills the process.
CELERY_TASK_SOFT_TIME_LIMIT = env_float("CELERY_TASK_SOFT_TIME_LIMIT", CELERY_TASK_TIME_LIMIT - 30)
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_SERIALIZER = CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_PROC_ALIVE_TIMEOUT = 60
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# A publish that cannot reach the broker gives up quickly: the sweeper re-enqueues later.
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0)
# The task that classifies a sighting, by name: the web side never imports the classifier.
CLASSIFY_TASK_NAME = "classifier.tasks.classify_observations"

# Inference. A batch is up to CLASSIFIER_BATCH_SIZE sightings claimed together; one forward pass
# takes at most CLASSIFIER_MAX_BATCH_SIZE views (photos x test-time augmentation views).
CLASSIFIER_BATCH_SIZE = env_int("CLASSIFIER_BATCH_SIZE", 16)
CLASSIFIER_MAX_BATCH_SIZE = env_int("CLASSIFIER_MAX_BATCH_SIZE", 32)
# Precision a worker serves float32 Keras models in: float32 (as saved), mixed_float16 (GPUs),
# mixed_bfloat16 (CPUs with AVX512-BF16/AMX), or auto (from the worker's hardware). Mixed
# precision keeps float32 weights and output layer; probabilities move by 16-bit rounding only.
CLASSIFIER_COMPUTE_DTYPE = env("CLASSIFIER_COMPUTE_DTYPE", "float32")
if CLASSIFIER_COMPUTE_DTYPE not in ("float32", "mixed_float16", "mixed_bfloat16", "auto"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"CLASSIFIER_COMPUTE_DTYPE={CLASSIFIER_COMPUTE_DTYPE!r}: expected float32, "
        "mixed_float16, mixed_bfloat16 or auto"
    )
# A worker's lease on a claimed batch; a worker that dies frees its sightings when it expires.
CLASSIFICATION_LEASE_SECONDS = env_int("CLASSIFICATION_LEASE_SECONDS", 120)
CLASSIFICATION_MAX_ATTEMPTS = env_int("CLASSIFICATION_MAX_ATTEMPTS", 3)
CLASSIFICATION_RETRY_BACKOFF = env_int("CLASSIFICATION_RETRY_BACKOFF", 10)
# The sweeper (beat) re-enqueues sightings left `received` and retries failed ones.
CLASSIFICATION_SWEEP_SECONDS = env_float("CLASSIFICATION_SWEEP_SECONDS", 60)
CLASSIFICATION_SWEEP_GRACE_SECONDS = env_float("CLASSIFICATION_SWEEP_GRACE_SECONDS", 30)
CLASSIFICATION_SWEEP_LIMIT = env_int("CLASSIFICATION_SWEEP_LIMIT", 500)
CLASSIFICATION_RETRY_FAILED_AFTER = env_int("CLASSIFICATION_RETRY_FAILED_AFTER", 3600)
CLASSIFICATION_GIVE_UP_ATTEMPTS = env_int("CLASSIFICATION_GIVE_UP_ATTEMPTS", 12)
# TensorFlow intra-op threads per worker process (0: TensorFlow's default, all cores).
TF_INTRA_OP_THREADS = env_int("TF_INTRA_OP_THREADS", 0)
# POST /api/v1/identify/ waits this long for an inference worker, then answers 503.
IDENTIFY_TIMEOUT_SECONDS = env_float("IDENTIFY_TIMEOUT_SECONDS", 30)
IDENTIFY_MAX_SIDE = env_int("IDENTIFY_MAX_SIDE", 1024)

# Review: a claim lasts this long, then the sighting returns to the queue by itself.
REVIEW_CLAIM_MINUTES = env_float("REVIEW_CLAIM_MINUTES", 30)
REVIEW_CLAIM_SCAN = env_int("REVIEW_CLAIM_SCAN", 50)
# The AI probability of an invasive taxon from which a sighting jumps the queue.
REVIEW_INVASIVE_THRESHOLD = env_float("REVIEW_INVASIVE_THRESHOLD", 0.3)

# Alerts to park contacts: retried with exponential backoff, every attempt recorded.
ALERT_MAX_ATTEMPTS = env_int("ALERT_MAX_ATTEMPTS", 12)
ALERT_RETRY_BACKOFF_SECONDS = env_float("ALERT_RETRY_BACKOFF_SECONDS", 30)
ALERT_RETRY_BACKOFF_MAX_SECONDS = env_float("ALERT_RETRY_BACKOFF_MAX_SECONDS", 3600)
ALERT_WEBHOOK_TIMEOUT_SECONDS = env_float("ALERT_WEBHOOK_TIMEOUT_SECONDS", 10)
ALERT_SWEEP_SECONDS = env_float("ALERT_SWEEP_SECONDS", 60)
ALERT_DIGEST_HOUR = env_int("ALERT_DIGEST_HOUR", 7)

# Training (the training queue's worker). Parameters a run does not give come from here.
TRAINING_DEFAULTS = {
    "architecture": env("TRAINING_ARCHITECTURE", "xception"),
    "image_size": env_int("TRAINING_IMAGE_SIZE", 299),
    "epochs": env_int("TRAINING_EPOCHS", 15),
    "batch_size": env_int("TRAINING_BATCH_SIZE", 16),
}
# ImageNet weights for the backbone, as a LOCAL file (nothing is downloaded at run time); e.g.
# Keras' xception_weights_tf_dim_ordering_tf_kernels_notop.h5. Without one, training starts
# from random weights and the run says so in its log.
TRAINING_IMAGENET_WEIGHTS = env("TRAINING_IMAGENET_WEIGHTS")
TRAINING_WORKDIR = Path(env("TRAINING_WORKDIR", str(VAR_DIR / "training")))
# A running run whose worker has not reported for this long is marked failed (worker lost).
TRAINING_HEARTBEAT_TIMEOUT = env_int("TRAINING_HEARTBEAT_TIMEOUT", 900)
# Celery beat starts a run once this many photos were newly confirmed since the last dataset.
TRAINING_AUTO_MIN_NEW_PHOTOS = env_int("TRAINING_AUTO_MIN_NEW_PHOTOS", 200)
# The promotion gate: no taxon's recall may fall by more than this (0.05 = 5 points).
PROMOTION_MAX_RECALL_DROP = env_float("PROMOTION_MAX_RECALL_DROP", 0.05)

CELERY_BEAT_SCHEDULE = {
    "sweep-training-runs": {"task": "classifier.tasks.sweep_training_runs", "schedule": 60.0},
    "scheduled-training": {"task": "classifier.tasks.start_scheduled_training", "schedule": 3600.0},
    "sweep-unclassified": {
        "task": "classifier.tasks.sweep_unclassified",
        "schedule": CLASSIFICATION_SWEEP_SECONDS,
    },
    "expire-review-claims": {"task": "observations.tasks.expire_review_claims", "schedule": 60.0},
    "retry-alerts": {"task": "observations.tasks.retry_alerts", "schedule": ALERT_SWEEP_SECONDS},
    "daily-alert-digests": {
        "task": "observations.tasks.send_alert_digests",
        "schedule": crontab(hour=ALERT_DIGEST_HOUR, minute=0),
    },
}

# `plain` for people (make run); `json` for log collectors: one object a line, with the
# sighting's UUID (`observation`) and the Celery task on every line about it (webapp/logs.py).
LOG_FORMAT = env("LOG_FORMAT", "plain").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "webapp.logs.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "webapp.logs.JSONFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY and env_bool("PARKWATCH_PRODUCTION", False):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("Set SECRET_KEY: the development key must not run in production.")

# Exports and the Darwin Core Archive's metadata
# The archive's eml.xml (GBIF's required dataset metadata) comes from these. The dataset licence
# defaults to the most restrictive licence a record may carry (as iNaturalist's GBIF dataset
# does); each record keeps its own licence in occurrence.txt and multimedia.txt.
DWCA_TITLE = env("DWCA_TITLE", "ParkWatch: expert-confirmed sightings of invasive species")
DWCA_DESCRIPTION = env(
    "DWCA_DESCRIPTION",
    "Sightings of invasive species photographed by park visitors, suggested by an image "
    "classifier and confirmed by expert curators from the photos. Positions of sensitive taxa "
    "are generalised to a 0.1 degree grid cell.",
)
DWCA_PUBLISHER = env("DWCA_PUBLISHER", "ParkWatch")
DWCA_CONTACT_NAME = env("DWCA_CONTACT_NAME", "ParkWatch data manager")
DWCA_CONTACT_EMAIL = env("DWCA_CONTACT_EMAIL", "parkwatch@localhost")
DWCA_CREATOR = env("DWCA_CREATOR", DWCA_PUBLISHER)
DWCA_METADATA_PROVIDER = env("DWCA_METADATA_PROVIDER", DWCA_PUBLISHER)
DWCA_CITATION = env("DWCA_CITATION", f"{DWCA_PUBLISHER}. {DWCA_TITLE}. Occurrence dataset.")
DWCA_LICENCE = env("DWCA_LICENCE", "CC-BY-NC-4.0")  # CC0-1.0, CC-BY-4.0 or CC-BY-NC-4.0
# rightsHolder of a record whose observer asked for no credit.
DWCA_RIGHTS_HOLDER = env("DWCA_RIGHTS_HOLDER", "ParkWatch contributors")
# Sightings read from the database per query while an export streams (memory stays flat).
EXPORT_CHUNK_SIZE = env_int("EXPORT_CHUNK_SIZE", 500)
# Exports that beat writes into storage every day at EXPORT_SCHEDULE_HOUR (TIME_ZONE), e.g.
# "dwca" or "dwca,csv": exports/<UTC time>-<format>.<ext> and exports/latest-<format>.<ext>
# (public positions), the stable name a GBIF IPT harvests. Empty: no scheduled export.
EXPORT_SCHEDULE_FORMATS = env_list("EXPORT_SCHEDULE_FORMATS")
EXPORT_SCHEDULE_HOUR = env_int("EXPORT_SCHEDULE_HOUR", 3)
for _format in EXPORT_SCHEDULE_FORMATS:
    if _format not in ("csv", "geojson", "dwca"):
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"EXPORT_SCHEDULE_FORMATS: {_format!r} is not csv, geojson or dwca"
        )
    CELERY_BEAT_SCHEDULE[f"write-export-{_format}"] = {
        "task": "observations.tasks.write_export",
        "schedule": crontab(hour=EXPORT_SCHEDULE_HOUR, minute=30),
        "kwargs": {"export_format": _format, "latest": True},
    }
