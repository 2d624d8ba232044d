# Slim production image: docker build -t chatfocus-backend . && docker run -p 8000:8000 --env-file .env chatfocus-backend
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PORT=8000

WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN DEBUG=0 SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && useradd --create-home --uid 10001 chatfocus \
    && mkdir -p /tmp/prometheus && chown chatfocus /tmp/prometheus
USER chatfocus

EXPOSE 8000
# Sent with a Host from ALLOWED_HOSTS and the proxy's https header, as the router would send it.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import os,urllib.request as u; h=os.environ.get('ALLOWED_HOSTS','localhost').split(',')[0]; u.urlopen(u.Request('http://127.0.0.1:%s/healthz' % os.environ.get('PORT','8000'), headers={'Host': h, 'X-Forwarded-Proto': 'https'}), timeout=2)"
CMD ["gunicorn", "chatfocus.wsgi"]
