# One image for the four services; the command picks the service.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY common ./common
COPY services ./services
RUN pip install --no-cache-dir .
RUN useradd --system --uid 10001 app
USER app
# e.g. `python -m uvicorn --factory services.hotline.app:create_app --host 0.0.0.0 --port 8001`
CMD ["python", "-m", "common.runner"]
