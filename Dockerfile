# Production image, one for every process of the Procfile (docker-compose.yml runs them all):
#   docker build -t chatfocus-backend . && docker run -p 8000:8000 --env-file .env chatfocus-backend
# Two stages: the build stage installs the hashed lock into a virtualenv and collects static files;
# the runtime stage gets the virtualenv and the app, owned by the unprivileged runtime user.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
# --require-hashes: every package, transitive ones included, must match the lock's hashes.
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r /tmp/requirements.txt
WORKDIR /app
COPY . .
RUN DEBUG=0 SECRET_KEY=collectstatic-only /opt/venv/bin/python manage.py collectstatic --noinput

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH PORT=8000 \
    CELERY_BEAT_SCHEDULE_FILENAME=/tmp/celerybeat-schedule
RUN useradd --create-home --uid 10001 chatfocus \
    && mkdir -p /tmp/prometheus && chown chatfocus /tmp/prometheus
COPY --from=build /opt/venv /opt/venv
COPY --from=build --chown=chatfocus:chatfocus /app /app
WORKDIR /app
USER chatfocus

EXPOSE 8000
# Sent with a Host from ALLOWED_HOSTS and the proxy's https header, as the router would send it.
# Meant for the web process; docker-compose.yml disables it for worker and beat.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request as u; h=os.environ.get('ALLOWED_HOSTS','localhost').split(',')[0]; u.urlopen(u.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT','8000'), headers={'Host': h, 'X-Forwarded-Proto': 'https'}), timeout=2)"
CMD ["gunicorn", "chatfocus.wsgi"]
