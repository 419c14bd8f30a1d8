"""Whether and as what a new job is made: its job id, its signature, and the account's daily CreateJob quota."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
from collections.abc import Callable

from airflow_provider_importexport import exceptions as exc

#: JobIds: 5 characters from 1-9 and A-Z without O (spec §3.1).
JOB_ID_ALPHABET = "123456789" + string.ascii_uppercase.replace("O", "")
JOB_ID_LENGTH = 5
DAILY_CREATE_QUOTA = 50


#: Job ids need to be unique, not secret: seeded from the system's randomness once, not a system call per character.
_ids = random.Random()


def new_job_id(taken: Callable[[str], bool]) -> str:
    """A random job id that ``taken`` says no job has or had (a purged id is never given again)."""
    while True:
        job_id = "".join(_ids.choices(JOB_ID_ALPHABET, k=JOB_ID_LENGTH))
        if not taken(job_id):
            return job_id


def signature(secret_key: str, job_id: str, manifest_text: str) -> tuple[str, str]:
    """The job's Signature (HMAC-SHA1 of the job id and manifest under the account's secret key)
    and the SIGNATURE file contents that carry it on the device."""
    text = manifest_text.replace("\r\n", "\n")
    mac = hmac.new(secret_key.encode(), f"{job_id}\n{text}".encode(), hashlib.sha1)
    value = base64.b64encode(mac.digest()).decode()
    return value, f"version:2.0\nsigningMethod:HmacSHA1\njobId:{job_id}\nsignature:{value}\n"


def check_quota(created_today: int, quota: int) -> None:
    """CreateJobQuotaExceeded once the account has made its quota of jobs this UTC day."""
    if created_today >= quota:
        raise exc.CreateJobQuotaExceededError(
            f"Your account has created {created_today} jobs today (UTC), its daily quota; try again tomorrow."
        )
