# One image for every process of the scaled topology; the command picks the role:
# serve | migrate | relay | consume views | consume reminders | deadlines | projections.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY domain ./domain
COPY api ./api
COPY projections ./projections
COPY consumers ./consumers
COPY yingke ./yingke
RUN pip install . && useradd --system --uid 10001 --home-dir /app yingke

USER yingke
EXPOSE 8000
ENTRYPOINT ["yingke"]
CMD ["serve", "--host", "0.0.0.0"]
