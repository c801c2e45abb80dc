# One image for every process of the scaled topology; the command picks the role:
# serve | migrate | relay | consume views | consume reminders | deadlines | projections.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
# The CJK TrueType font the evidence PDF embeds (api/evidence_pdf.py), so its Chinese shows
# on any reader.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*

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
