"""Production settings: the base settings plus what a deployment must not run without.

`manage.py check --deploy` is clean with these settings and their defaults (CI runs it). The
site is served over HTTPS only: behind a reverse proxy that terminates TLS (nginx in
docker-compose, or a load balancer), the proxy sets `X-Forwarded-Proto` and
DJANGO_CSRF_TRUSTED_ORIGINS names the public origin (README, "Deploying behind HTTPS").
"""

import os

from django.core.exceptions import ImproperlyConfigured

from config.settings import *  # noqa: F403

# What Django's check security.W009 calls a key that is too weak to sign sessions with.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: production settings refuse to start without a secret key."
    )
if (len(SECRET_KEY) < SECRET_KEY_MIN_LENGTH
        or len(set(SECRET_KEY)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS
        or SECRET_KEY.startswith("django-insecure-")):
    raise ImproperlyConfigured(
        f"DJANGO_SECRET_KEY is too weak: use at least {SECRET_KEY_MIN_LENGTH} random characters, "
        "e.g. from: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )
DEBUG = False

# HTTPS only. Set DJANGO_SECURE_SSL_REDIRECT=false solely for a trial over plain HTTP on
# localhost (check --deploy then warns, as it should).
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)  # noqa: F405
# Container health checks ask gunicorn directly, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^api/health/$"]
# The proxy in front says whether the client's connection was HTTPS (deploy/nginx.conf passes
# on what a TLS terminator in front of it says, else its own scheme). gunicorn must be
# reachable only through the proxy, or a client could claim HTTPS itself.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# nginx appends the client's address to X-Forwarded-For (login lockouts count per client).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1)  # noqa: F405
SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=60 * 60 * 24 * 365)  # noqa: F405
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS",  # noqa: F405
                                          default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)  # noqa: F405
# Cookies travel over HTTPS only: the session is an anonymous volunteer's identity.
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# Links in sign-up and password-reset e-mails use the public scheme.
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"
