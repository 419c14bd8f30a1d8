"""A small client for the admin API, used by the CLI, the demo and tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any


class AdminError(RuntimeError):
    """The admin API refused a request; the message is its explanation, ``status`` its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


#: Environment variable with the admin token: the default of the CLI's --admin-token and of EmulatorAdmin.
TOKEN_ENV = "IMPORTEXPORT_EMULATOR_ADMIN_TOKEN"


class EmulatorAdmin:
    """Admin API client; ``token`` (default: ``$IMPORTEXPORT_EMULATOR_ADMIN_TOKEN``) is sent as a
    bearer token, which an emulator started with an admin token requires."""

    def __init__(self, endpoint_url: str, timeout: float = 30, token: str | None = None) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.base = self.endpoint_url + "/_importexport"
        self.timeout = timeout
        self.token = token if token is not None else os.environ.get(TOKEN_ENV) or None

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        url = f"{self.base}/{path.lstrip('/')}"
        if not url.startswith(("http://", "https://")):
            raise AdminError(f"the admin API needs an http(s) endpoint URL, not {self.base!r}")
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                message = json.loads(raw).get("message", str(err))
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace") or str(err)
            raise AdminError(message, err.code) from None

    def health(self) -> dict[str, Any]:
        return self.request("GET", "health")

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"jobs/{job_id}")

    def jobs(self) -> list[dict[str, Any]]:
        return self.request("GET", "jobs")

    def act(self, job_id: str, action: str, **options: Any) -> dict[str, Any]:
        """ship, receive, start, process, return, expire or attach one job."""
        return self.request("POST", f"jobs/{job_id}/{action}", options)

    def set_faults(self, **rates: Any) -> dict[str, Any]:
        return self.request("POST", "faults", rates)

    def queue_faults(self, *faults: str) -> dict[str, Any]:
        return self.request("POST", "faults/queue", {"faults": list(faults)})

    def requests(self, action: str | None = None, job_id: str | None = None) -> list[dict[str, Any]]:
        """The emulator's record of API requests (oldest first), optionally for one operation or job."""
        records: list[dict[str, Any]] = self.request("GET", "requests")
        return [r for r in records if action in (None, r["action"]) and job_id in (None, r["job_id"])]

    def fault_counts(self) -> dict[str, int]:
        return self.request("GET", "faults")["counts"]

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self.request("POST", "clock", {"advance_seconds": seconds})

    def set_profile(self, name: str | None = None, **stages: Any) -> dict[str, Any]:
        return self.request("POST", "profile", {"name": name} if name else stages)

    def tick(self) -> dict[str, Any]:
        return self.request("POST", "tick", {})

    def create_bucket(self, bucket: str, region: str = "us-east-1", access_key: str | None = None) -> dict[str, Any]:
        return self.request("POST", "buckets", {"bucket": bucket, "region": region, "access_key": access_key})


def spawn(
    *args: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[subprocess.Popen[str], EmulatorAdmin]:
    """Start the emulator in its own process on a free port (plus ``args``), in ``cwd`` (which
    ``python -m`` searches first); wait for its ready line.

    Returns the process (terminate it when done) and an admin client, which sends the admin
    token given as ``--admin-token`` or in ``env`` (or this process's environment); the
    endpoint is ``client.endpoint_url``.
    """
    command = [sys.executable, "-m", "airflow_provider_importexport.emulator", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd)  # noqa: S603 - our own module
    assert process.stdout is not None
    line = process.stdout.readline()
    match = re.search(r"ready on (http://\S+)", line)
    if not match:
        process.kill()
        raise AdminError(f"the emulator did not start: {line!r}")
    return process, EmulatorAdmin(match.group(1), token=_token_of(args, os.environ if env is None else env))


def _token_of(args: tuple[str, ...], env: Mapping[str, str]) -> str | None:
    """The admin token a command line gives the emulator (the flag wins over the environment)."""
    for i, arg in enumerate(args):
        if arg == "--admin-token" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--admin-token="):
            return arg.split("=", 1)[1]
    return env.get(TOKEN_ENV) or None
