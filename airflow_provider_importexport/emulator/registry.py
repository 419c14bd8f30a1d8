"""The jobs the emulator holds: by job id, by account newest first (ListJobs), by account and UTC day
(the quota), and the ids of purged jobs, which are never given again.

Every look-up a call makes costs the same with a thousand jobs or a million: a ListJobs
page walks only the jobs it returns, a CreateJob counts its quota from a running count.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator

from airflow_provider_importexport.emulator.state import Job

#: Purged jobs leave holes in their account's list; it is packed when holes are this many and half of it.
_PACK_AFTER = 64


def _order(job: Job) -> tuple[dt.datetime, int]:
    """Creation order: ListJobs lists by CreationDate, and jobs created in the same second by sequence."""
    return job.created, job.sequence


class _AccountJobs:
    """One account's jobs in creation order, with holes where purged jobs were."""

    def __init__(self) -> None:
        self.slots: list[Job | None] = []
        self.position: dict[str, int] = {}
        self.holes = 0

    def add(self, job: Job) -> None:
        last = next((j for j in reversed(self.slots) if j is not None), None)
        if last is None or _order(last) <= _order(job):
            self.position[job.job_id] = len(self.slots)
            self.slots.append(job)
            return
        # A job older than the newest (the wall clock went back): insert it in order.
        self.pack()
        index = bisect.bisect_right([_order(j) for j in self.live()], _order(job))
        self.slots.insert(index, job)
        self._index_from(index)

    def remove(self, job_id: str) -> None:
        self.slots[self.position.pop(job_id)] = None
        self.holes += 1

    def live(self) -> list[Job]:
        return [j for j in self.slots if j is not None]

    def pack(self) -> None:
        if self.holes:
            self.slots = list(self.live())
            self.holes = 0
            self._index_from(0)

    def pack_if_sparse(self) -> None:
        if self.holes >= _PACK_AFTER and 2 * self.holes >= len(self.slots):
            self.pack()

    def _index_from(self, start: int) -> None:
        for index in range(start, len(self.slots)):
            slot = self.slots[index]
            if slot is not None:
                self.position[slot.job_id] = index


class JobRegistry:
    """Every job of every account; not thread-safe (the backend's lock guards it)."""

    def __init__(self, jobs: Iterable[Job] = (), purged: Iterable[str] = ()) -> None:
        """Hold ``jobs`` (from the state file, in any order) and the ids of ``purged`` ones."""
        self._jobs: dict[str, Job] = {}
        self._accounts: dict[str, _AccountJobs] = {}
        self._per_day: Counter[tuple[str, dt.date]] = Counter()
        self._purged: set[str] = set(purged)
        for job in sorted(jobs, key=_order):
            self.add(job)
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
        self._accounts.setdefault(job.account_id, _AccountJobs()).add(job)
        self._per_day[job.account_id, job.created.date()] += 1

    def purge(self, job: Job) -> None:
        """Forget the job; its id stays taken. Safe while :meth:`newest_first` walks its account."""
        del self._jobs[job.job_id]
        self._accounts[job.account_id].remove(job.job_id)
        self._per_day[job.account_id, job.created.date()] -= 1
        self._purged.add(job.job_id)

    def created_on(self, account_id: str, day: dt.date) -> int:
        """How many of the account's jobs were created on this UTC day."""
        return self._per_day[account_id, day]

    def owns(self, account_id: str, job_id: str) -> bool:
        account = self._accounts.get(account_id)
        return account is not None and job_id in account.position

    def newest_first(self, account_id: str, after: str | None = None) -> Iterator[Job]:
        """The account's jobs, newest first; after ``after`` (one of its job ids) when given."""
        account = self._accounts.get(account_id)
        if account is None:
            return
        account.pack_if_sparse()
        start = len(account.slots) if after is None else account.position[after]
        for index in range(start - 1, -1, -1):
            job = account.slots[index]
            if job is not None:
                yield job
