# The platform's images, one Dockerfile, two targets:
#   web     gunicorn, Celery beat and migrations: requirements-web.txt only, no PyTorch at all
#           (the web process never imports it: tests/hardening/test_deploy.py).
#   worker  the Celery workers: the web image plus PyTorch's CPU build and the ONNX stack.
# docker-compose.yml builds both. Build one with `docker build --target web .`.
FROM python:3.11-slim AS web

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=config.production \
    DJANGO_MEDIA_ROOT=/data/media \
    DJANGO_STATIC_ROOT=/app/staticfiles

WORKDIR /app
COPY requirements-web.txt .
RUN pip install -r requirements-web.txt

COPY . .
# collectstatic needs settings but no secret: build with a throwaway key of a valid strength.
RUN DJANGO_SECRET_KEY=build-only-$(python -c 'import secrets; print(secrets.token_urlsafe(64))') \
    python manage.py collectstatic --noinput \
    && useradd --system --uid 1000 app && mkdir -p /data/media && chown -R app /data
USER app

EXPOSE 8000
# gthread: a slow client holds a thread, not a whole worker; nginx (docker-compose) buffers
# requests and responses in front, so no client can starve the workers.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", \
     "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-"]

FROM web AS worker
USER root
# The CPU build of torch from PyTorch's own index: the default (PyPI) build pulls gigabytes of
# CUDA libraries a CPU worker never uses. Installed first, so requirements.txt's pin is met.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements.txt .
RUN pip install -r requirements.txt
USER app
CMD ["celery", "-A", "config", "worker", "--loglevel", "info"]
