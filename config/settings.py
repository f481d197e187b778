"""Settings, all from the environment (django-environ).

With nothing set the project runs on SQLite with Celery in eager mode, so a new user needs
no services. DATABASE_URL switches to PostgreSQL, CELERY_BROKER_URL to a real broker.
`config.production` adds the checks a deployment needs.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    environ.Env.read_env(env_file)

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Development key only; config.production refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-never-use-in-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

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
    "labeling",
    "aggregation",
    "review",
    "training",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files (admin, API docs) under gunicorn, without a web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
# Keep connections open between requests: a new PostgreSQL connection costs more than a
# classification insert.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Deployments collect static files into DJANGO_STATIC_ROOT (the Dockerfile does); without it,
# WhiteNoise serves them straight from the apps.
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default=None)
WHITENOISE_USE_FINDERS = STATIC_ROOT is None
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("DJANGO_MEDIA_ROOT", default=str(BASE_DIR / "media")))
# Label-set artifacts: one folder and one archive per LabelSet, never rewritten.
LABEL_SETS_ROOT = Path(env.str("LABEL_SETS_ROOT", default=str(MEDIA_ROOT / "label-sets")))
# Model versions (weights, ONNX) and the checkpoints of training jobs in progress.
MODELS_ROOT = Path(env.str("MODELS_ROOT", default=str(MEDIA_ROOT / "models")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Rendered PNGs are a cache: a render written twice by two workers is the same file.
    "renders": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": MEDIA_ROOT / "renders", "allow_overwrite": True},
    },
}

# Uploads larger than this are refused before they reach a view.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

# Celery: eager (in-process) unless a broker is configured.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=None)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
# Long batch runs get their own queue so they never hold up the per-answer online updates.
CELERY_TASK_ROUTES = {
    "aggregation.tasks.aggregate_workflow": {"queue": "aggregation"},
    "aggregation.tasks.aggregate_active_workflows": {"queue": "aggregation"},
    "aggregation.tasks.export_label_set": {"queue": "aggregation"},
    "aggregation.tasks.swap_online_update": {"queue": "online"},
    "review.tasks.build_rankings": {"queue": "aggregation"},
    "review.tasks.refresh_rankings": {"queue": "aggregation"},
    # Training holds the CPU (or GPU) for minutes to hours; scoring a visit must not wait for it.
    "training.tasks.train_model": {"queue": "training"},
    "training.tasks.score_subjects": {"queue": "scoring"},
}
CELERY_BEAT_SCHEDULE = {
    "aggregate-active-workflows": {
        "task": "aggregation.tasks.aggregate_active_workflows",
        "schedule": env.float("AGGREGATION_INTERVAL_S", default=3600.0),
    },
    # The review queues' order follows live votes and posteriors within this interval.
    "refresh-review-rankings": {
        "task": "review.tasks.refresh_rankings",
        "schedule": env.float("REVIEW_RANKING_INTERVAL_S", default=300.0),
    },
}
CELERY_ACCEPT_CONTENT = ["json"]

# The science settings.
STAMP_SIZE = env.int("STAMP_SIZE", default=51)
RENDER_SCALE = env.int("RENDER_SCALE", default=6)
# Anonymous volunteers are identified by their session; keep it a season long.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 180)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labeling.api.errors.json_exception_handler",
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Real/Bogus citizen-science platform API",
    "DESCRIPTION": "Volunteer classification of difference-image detections, "
    "expert reference sets, aggregation and label sets.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the installed sidecar package: no CDN at run time.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AnswerEnum": "labeling.records.ANSWERS",
        "ReferenceLabelEnum": "labeling.models.REFERENCE_LABEL_CHOICES",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
