"""Long runs as jobs (ADR 0059): state and results in the database, work in a thread.

The ``jobs`` table lives beside the views (SQLite embedded, PostgreSQL when scaled), so
any API replica behind the balancer answers ``GET /v1/jobs/{id}`` for a job another
replica runs. The replica that accepted the job runs it in a daemon thread and writes its
progress there; a job whose replica died stops beating and is reported as failed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from projections.runtime import ViewDB

log = logging.getLogger("yingke.jobs")

TABLE = "jobs"
# A running job writes at least this often (progress, or a beat while it reads the log);
# one silent for STALE_AFTER lost its process.
BEAT_SECONDS = 2.0
STALE_AFTER = timedelta(minutes=5)

Work = Callable[[Callable[[int, int], None]], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    job_id: str
    kind: str
    project_id: str
    requested_by: str
    params: dict[str, Any]
    status: str  # queued | running | done | failed
    done: int
    total: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "kind": self.kind,
            "project_id": self.project_id,
            "requested_by": self.requested_by,
            "params": self.params,
            "status": self.status,
            "progress": {"done": self.done, "total": self.total},
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "error": self.error,
            "result": self.result,
        }


def _now() -> datetime:
    return datetime.now(UTC)


class JobStore:
    def __init__(self, db: ViewDB) -> None:
        self.db = db

    def migrate(self) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                f"CREATE TABLE IF NOT EXISTS {TABLE} ("
                "job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, project_id TEXT NOT NULL, "
                "requested_by TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, "
                "done BIGINT NOT NULL, total BIGINT NOT NULL, result TEXT, error TEXT, "
                "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
            )

    def create(self, kind: str, project_id: str, requested_by: str, params: dict[str, Any]) -> Job:
        job_id, now = str(uuid.uuid4()), _now().isoformat()
        with self.db.transaction() as tx:
            tx.execute(
                f"INSERT INTO {TABLE} (job_id, kind, project_id, requested_by, params, status, "
                "done, total, result, error, created_at, updated_at) "
                "VALUES (%s, %s, %s, %s, %s, 'queued', 0, 0, NULL, NULL, %s, %s)",
                (job_id, kind, project_id, requested_by, json.dumps(params), now, now),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def _update(self, job_id: str, sets: str, params: tuple[Any, ...]) -> None:
        with self.db.transaction() as tx:
            tx.execute(
                f"UPDATE {TABLE} SET {sets}, updated_at = %s WHERE job_id = %s",
                (*params, _now().isoformat(), job_id),
            )

    def progress(self, job_id: str, done: int, total: int) -> None:
        self._update(job_id, "status = 'running', done = %s, total = %s", (done, total))

    def finish(self, job_id: str, result: dict[str, Any]) -> None:
        self._update(job_id, "status = 'done', result = %s", (json.dumps(result),))

    def fail(self, job_id: str, error: dict[str, Any]) -> None:
        self._update(job_id, "status = 'failed', error = %s", (json.dumps(error),))

    def get(self, job_id: str) -> Job | None:
        rows = self.db.query(
            "SELECT job_id, kind, project_id, requested_by, params, status, done, total, "
            f"result, error, created_at, updated_at FROM {TABLE} WHERE job_id = %s",
            (job_id,),
        )
        if not rows:
            return None
        r = rows[0]
        status, error = str(r[5]), json.loads(r[9]) if r[9] else None
        updated = datetime.fromisoformat(str(r[11]))
        if status in ("queued", "running") and _now() - updated > STALE_AFTER:
            status, error = "failed", {"title": "the server running the job stopped"}
        return Job(
            str(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            json.loads(r[4]),
            status,
            int(r[6]),
            int(r[7]),
            json.loads(r[8]) if r[8] else None,
            error,
            datetime.fromisoformat(str(r[10])),
            updated,
        )


class JobRunner:
    """Runs accepted jobs in daemon threads of this process."""

    def __init__(self, jobs: JobStore) -> None:
        self.jobs = jobs
        self.threads: dict[str, threading.Thread] = {}

    def start(self, job: Job, work: Work) -> None:
        thread = threading.Thread(
            target=self._run, args=(job.job_id, work), name=f"job-{job.job_id}", daemon=True
        )
        self.threads[job.job_id] = thread
        thread.start()

    def _run(self, job_id: str, work: Work) -> None:
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done == total or now - last[0] >= BEAT_SECONDS:
                last[0] = now
                self.jobs.progress(job_id, done, total)

        try:
            self.jobs.progress(job_id, 0, 0)
            self.jobs.finish(job_id, work(progress))
        except Exception as failed:  # the job's answer, not the request's: record it
            log.exception("job %s failed", job_id)
            field = getattr(failed, "field", None)
            self.jobs.fail(
                job_id,
                {"title": type(failed).__name__, "detail": str(failed), "field": field},
            )
        finally:
            self.threads.pop(job_id, None)

    def wait(self, timeout: float = 30.0) -> None:
        """Until every job this process started has ended (for tests and shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self.threads.values()):
            thread.join(max(0.0, deadline - time.monotonic()))
