"""Settings, all from the environment (django-environ).

With nothing set the project runs on SQLite with Celery in eager mode, so a new user needs
no services. DATABASE_URL switches to PostgreSQL, CELERY_BROKER_URL to a real broker.
`config.production` adds the checks a deployment needs.
"""

from pathlib import Path

import environ

from labeling.ingest.limits import DEFAULT_MAX_DECOMPRESSED_BYTES, DEFAULT_MAX_STAMP_SIDE

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
    "outbox",
    "labeling",
    "aggregation",
    "review",
    "training",
    "frontend",
    "operations",
    "accounts",
    "talk",
    "projects",
    "allauth",
    "allauth.account",
    # Login throttling: failed sign-ins are counted per client address and per user name.
    "axes",
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
    "allauth.account.middleware.AccountMiddleware",
    # Last, as django-axes asks: it answers a locked-out sign-in with 429.
    "axes.middleware.AxesMiddleware",
]

# django-axes first: it refuses a locked-out client before a password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# Locked out after AXES_FAILURE_LIMIT wrong passwords from one address, or for one user name
# from anywhere (against guessing spread over many addresses), for AXES_COOLOFF_HOURS. An
# operator lifts a lockout early with `manage.py axes_reset_username NAME` or `axes_reset_ip`.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=1.0)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "labeling.client_ip.client_ip"
# Reverse proxies in front of the web process that append to X-Forwarded-For (production: 1,
# nginx); labeling.client_ip reads the client's address through them.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

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
# Long batch runs get their own queue, away from the default queue's short jobs.
CELERY_TASK_ROUTES = {
    "aggregation.tasks.aggregate_workflow": {"queue": "aggregation"},
    "aggregation.tasks.aggregate_active_workflows": {"queue": "aggregation"},
    "aggregation.tasks.export_label_set": {"queue": "aggregation"},
    "review.tasks.build_rankings": {"queue": "aggregation"},
    "review.tasks.refresh_rankings": {"queue": "aggregation"},
    # Training holds the CPU (or GPU) for minutes to hours; scoring a visit must not wait for it.
    "training.tasks.train_model": {"queue": "training"},
    "training.tasks.score_subjects": {"queue": "scoring"},
    # Model evaluations the comparison page asks for: on the workers that load models.
    "training.tasks.evaluate_version": {"queue": "scoring"},
}
CELERY_BEAT_SCHEDULE = {
    # The web process records queued work in PostgreSQL (outbox); a worker sends it.
    "outbox-drain": {
        "task": "outbox.tasks.outbox_drain",
        "schedule": env.float("OUTBOX_DRAIN_INTERVAL_S", default=2.0),
    },
    "aggregate-active-workflows": {
        "task": "aggregation.tasks.aggregate_active_workflows",
        "schedule": env.float("AGGREGATION_INTERVAL_S", default=3600.0),
    },
    "sweep-stuck-jobs": {
        "task": "operations.tasks.sweep_stuck_jobs",
        "schedule": env.float("SWEEP_INTERVAL_S", default=600.0),
    },
    # The review queues' order follows live votes and posteriors within this interval.
    "refresh-review-rankings": {
        "task": "review.tasks.refresh_rankings",
        "schedule": env.float("REVIEW_RANKING_INTERVAL_S", default=300.0),
    },
}
# A worker that dies mid-task (killed, out of memory) leaves its message to be delivered again,
# not acknowledged as done: with acks_late, every task is then run again, and is idempotent.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# The sweeper (operations.sweeper): when a job counts as lost or stuck, and when left-over
# staging folders and stamp files count as abandoned.
SWEEP_PENDING_AFTER_S = env.int("SWEEP_PENDING_AFTER_S", default=15 * 60)
SWEEP_RUNNING_LIMIT_S = env.int("SWEEP_RUNNING_LIMIT_S", default=6 * 3600)
SWEEP_GIVE_UP_AFTER_S = env.int("SWEEP_GIVE_UP_AFTER_S", default=24 * 3600)
SWEEP_FILES_AFTER_S = env.int("SWEEP_FILES_AFTER_S", default=6 * 3600)
CELERY_ACCEPT_CONTENT = ["json"]

# The science settings.
STAMP_SIZE = env.int("STAMP_SIZE", default=51)
RENDER_SCALE = env.int("RENDER_SCALE", default=6)
# How ingest fits a stamp smaller than STAMP_SIZE (a 30x30 Rubin cutout) into the stored cube
# the CNN reads: "pad" keeps its pixels at their native scale in NaN ("no data"), "resample"
# enlarges it bilinearly to fill the cube (labeling.stamps.normalise_stamp).
STAMP_FIT = env.str("STAMP_FIT", default="pad")
# What `manage.py ingest` may read (labeling.ingest.limits): the longest stamp axis in pixels
# (real cutouts are 30 to 63), the most bytes one input may expand to in memory, and folders
# besides a manifest's own that its stamp paths may point into.
INGEST_MAX_STAMP_SIDE = env.int("INGEST_MAX_STAMP_SIDE", default=DEFAULT_MAX_STAMP_SIDE)
INGEST_MAX_DECOMPRESSED_BYTES = env.int("INGEST_MAX_DECOMPRESSED_BYTES",
                                        default=DEFAULT_MAX_DECOMPRESSED_BYTES)
INGEST_ALLOWED_ROOTS = env.list("INGEST_ALLOWED_ROOTS", default=[])
# Anonymous volunteers are identified by their session; keep it a season long.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 180)
# Identities and abuse (README, "What the platform defends against"). A served-subject token
# is good this long; a client address may create this many anonymous identities an hour; a
# volunteer may answer this many times a minute; an anonymous volunteer's first answers in a
# workflow are evidence for SWAP but do not count toward retirement.
SERVED_TOKEN_MAX_AGE_S = env.int("SERVED_TOKEN_MAX_AGE_S", default=24 * 3600)
ANONYMOUS_IDENTITIES_PER_HOUR = env.int("ANONYMOUS_IDENTITIES_PER_HOUR", default=30)
ANSWERS_PER_MINUTE = env.int("ANSWERS_PER_MINUTE", default=120)
ANONYMOUS_PROBATION_ANSWERS = env.int("ANONYMOUS_PROBATION_ANSWERS", default=3)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "labeling.api.errors.json_exception_handler",
    # JSON nested beyond any real request is a 400 before it can exhaust the stack.
    "DEFAULT_PARSER_CLASSES": [
        "labeling.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
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
    # drf-spectacular's own hook (enums), then the API's one error shape on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "labeling.api.schema.document_errors",
    ],
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

# --- Accounts (django-allauth): sign-up, e-mail verification, password reset -----------------
# The accounts app comes before allauth so that its templates (the site's look) win.
# The adapter merges the browser's anonymous answers into the account on every sign-in.
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
# "optional": a new volunteer classifies at once and is sent a link to confirm the address;
# "mandatory" holds the account until the address is confirmed.
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
ACCOUNT_LOGOUT_REDIRECT_URL = "/"
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env.str("ACCOUNT_DEFAULT_HTTP_PROTOCOL", default="http")
# E-mail: printed on the console unless EMAIL_URL names a server, e.g.
# EMAIL_URL=smtp+tls://user:password@smtp.example.org:587
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Real/Bogus <noreply@localhost>")


# --- Talk: per-subject comments and bad-image reports -----------------------------------------
# How many comments and reports one person may post per window (Django's cache counts them).
TALK_POSTS_PER_WINDOW = env.int("TALK_POSTS_PER_WINDOW", default=10)
TALK_WINDOW_S = env.int("TALK_WINDOW_S", default=600)
