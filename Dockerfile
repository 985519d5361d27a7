FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY frontrow ./frontrow
RUN pip install '.[granian]' && useradd --system --uid 10001 --home-dir /app frontrow \
    && chown frontrow /app
USER frontrow
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"
CMD ["frontrow", "serve", "--host", "0.0.0.0", "--port", "8000"]
