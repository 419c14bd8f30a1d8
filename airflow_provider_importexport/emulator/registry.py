"""The jobs the emulator holds: by job id, by account newest first (ListJobs), by account and UTC day
(the quota), and the ids of purged jobs, which are never given again."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Iterator

from airflow_provider_importexport.emulator.state import Job


class JobRegistry:
    """Every job of every account; not thread-safe (the backend's lock guards it)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._purged: set[str] = set()
        self._sequence = itertools.count()

    def restore(self, jobs: Iterable[Job], purged: Iterable[str]) -> None:
        """Hold these jobs and purged ids (from the state file) instead of any before."""
        self._jobs = {job.job_id: job for job in jobs}
        self._purged = set(purged)
        self._sequence = itertools.count(max((j.sequence for j in self._jobs.values()), default=-1) + 1)

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def purged(self) -> set[str]:
        return set(self._purged)

    def was_purged(self, job_id: str) -> bool:
        return job_id in self._purged

    def taken(self, job_id: str) -> bool:
        """Whether a job has or had this id."""
        return job_id in self._jobs or job_id in self._purged

    def next_sequence(self) -> int:
        return next(self._sequence)

    def add(self, job: Job) -> None:
        self._jobs[job.job_id] = job

    def purge(self, job: Job) -> None:
        del self._jobs[job.job_id]
        self._purged.add(job.job_id)

    def created_on(self, account_id: str, day: dt.date) -> int:
        """How many of the account's jobs were created on this UTC day."""
        return sum(1 for j in self._jobs.values() if j.account_id == account_id and j.created.date() == day)

    def newest_first(self, account_id: str, after: str | None = None) -> Iterator[Job]:
        """The account's jobs, newest first; after ``after`` (one of its job ids) when given."""
        mine = sorted(
            (j for j in self._jobs.values() if j.account_id == account_id),
            key=lambda j: (j.created, j.sequence),
            reverse=True,
        )
        start = 0 if after is None else [j.job_id for j in mine].index(after) + 1
        return iter(mine[start:])
