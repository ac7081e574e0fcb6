# One image for web, worker and beat (see docker-compose.yml). Default command: gunicorn on :8000.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=b2p_platform.settings.base \
    STATIC_MANIFEST=true

WORKDIR /app

RUN groupadd --system app && useradd --system --gid app --home-dir /app --no-create-home app

# Dependencies first, so code changes reuse this layer. All pins ship as binary wheels.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# Static files are collected at build time; the key is only for this step.
RUN SECRET_KEY=collectstatic-only DEBUG=false python manage.py collectstatic --noinput \
    && chown -R app:app /app

USER app
EXPOSE 8000
CMD ["gunicorn", "b2p_platform.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
