"""Server and worker settings, read once from the environment (``VIDORA_*``).

Every process of a deployment (API servers, standalone workers) reads the same variables,
so one environment file configures them all. The CLI's flags override the environment.
Values are checked here, at start-up, so a typo stops the process with a message naming the
variable instead of surfacing as a 500 on the first request.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "changethis", "secret", "password", "xxx", "todo", "example"}
)
"""Values copied from an example file instead of generated; refused for any secret."""

MIN_WEBHOOK_SECRET_BYTES = 24
"""Standard Webhooks secrets are 24 to 64 random bytes; shorter ones are guessable."""


@dataclass(frozen=True)
class Settings:
    """Everything a server or worker process needs to know, with safe defaults."""

    data_dir: Path = Path("vidora-data")
    """Where the SQLite database, uploaded inputs and generated files live. With several hosts
    it must be a directory they all share."""
    db_url: str = ""
    """SQLAlchemy URL of the job database; empty means SQLite in `data_dir` (WAL mode)."""
    models_file: Path | None = None
    """YAML model registry; None means the built-in model with the `sora-2` aliases."""
    auth: bool = True
    """Require an API key on /v1. Off only for a single user on localhost."""
    embedded_worker: bool = True
    """Run one worker inside the API process (the embedded default: nothing else to start)."""
    studio: bool = True
    """Serve the browser studio at /studio (same process, same jobs, keys and limits)."""
    studio_in_flight_limit: int = 4
    """Videos one studio user may have queued or generating at once (0: only the key's limit);
    a browser tab is one person, so this stays well under the API's per-key default."""

    lease_seconds: float = 30.0
    """How long a claim lasts without a heartbeat before another worker may take the job."""
    max_attempts: int = 3
    """Claims a job may use; once its last lease expires it fails with `worker_lost`."""
    batch_size: int = 4
    """Most compatible queued jobs (same model, size, seconds) generated in one call."""
    poll_interval: float = 0.5
    """Seconds an idle worker waits before looking at the queue again."""
    poll_after_ms: int = 1000
    """`openai-poll-after-ms` sent with unfinished videos; the SDK's poll() honours it."""
    video_ttl_seconds: int = 24 * 3600
    """Completed videos expire (files deleted, 404 saying so) this long after completion."""
    janitor_interval: float = 60.0
    """Seconds between sweeps for expired videos."""

    max_image_bytes: int = 20 * 1024 * 1024
    """Largest `input_reference` image accepted (the spec's 20 MB)."""
    max_video_bytes: int = 100 * 1024 * 1024
    """Largest uploaded video accepted by edits and extensions."""
    max_source_seconds: int = 60
    """Longest video an extension may continue (the stitched result grows with each one)."""

    rpm_limit: int = 600
    """Default requests per minute per key (0: unlimited); a key may carry its own."""
    in_flight_limit: int = 32
    """Default queued + running jobs per key (0: unlimited)."""
    seconds_per_day_limit: int = 4 * 3600
    """Default seconds of video a key may request per rolling 24 h (0: unlimited)."""

    webhook_url: str | None = None
    """A server-wide webhook endpoint that receives every key's events."""
    webhook_secret: str | None = field(default=None, repr=False)
    """Its `whsec_` signing secret (required with `webhook_url`)."""
    webhook_max_attempts: int = 8
    """Deliveries tried this many times (with exponential backoff) before giving up."""
    webhook_backoff_seconds: float = 5.0
    """First retry delay; each later one doubles, capped at an hour."""
    webhook_timeout_seconds: float = 10.0
    """How long one delivery waits for the receiver."""

    log_format: str = "json"
    """`json` (one object per line, for log pipelines) or `text` (for a terminal)."""
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.models_file is not None:
            object.__setattr__(self, "models_file", Path(self.models_file))
        _check_positive(self, "lease_seconds", "max_attempts", "batch_size", "poll_interval")
        _check_positive(self, "video_ttl_seconds", "janitor_interval", "webhook_max_attempts")
        _check_positive(self, "max_image_bytes", "max_video_bytes", "max_source_seconds")
        _check_positive(self, "webhook_backoff_seconds", "webhook_timeout_seconds")
        for name in (
            "rpm_limit",
            "in_flight_limit",
            "seconds_per_day_limit",
            "poll_after_ms",
            "studio_in_flight_limit",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{_env_name(name)} must be 0 or more, got {getattr(self, name)}")
        if self.log_format not in ("json", "text"):
            raise ValueError(f"VIDORA_LOG_FORMAT must be 'json' or 'text', not {self.log_format!r}")
        if self.webhook_url is not None:
            if not self.webhook_url.startswith(("http://", "https://")):
                raise ValueError(
                    f"VIDORA_WEBHOOK_URL must be an http(s) URL, not {self.webhook_url!r}"
                )
            if self.webhook_secret is None:
                raise ValueError(
                    "VIDORA_WEBHOOK_URL is set but VIDORA_WEBHOOK_SECRET is not: generate one with "
                    "`vidora webhooks secret`"
                )
        if self.webhook_secret is not None:
            check_webhook_secret(self.webhook_secret, "VIDORA_WEBHOOK_SECRET")

    @property
    def database_url(self) -> str:
        """The configured URL, or the embedded SQLite file inside the data dir."""
        return self.db_url or f"sqlite:///{(self.data_dir / 'vidora.db').resolve()}"

    @property
    def heartbeat_seconds(self) -> float:
        """A third of the lease, so two heartbeats can be missed before the lease ends."""
        return self.lease_seconds / 3

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `VIDORA_<FIELD>` variables; keyword overrides (CLI flags) win.

        Overrides that are None are ignored, so a CLI can pass every flag unconditionally.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(_env_name(f.name))
            if raw is not None:
                values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def check_webhook_secret(secret: str, what: str = "webhook secret") -> None:
    """Refuse placeholders and secrets that are not `whsec_` + base64 of enough random bytes."""
    lowered = secret.lower().removeprefix("whsec_")
    if lowered in PLACEHOLDER_SECRETS:
        raise ValueError(
            f"{what} is a placeholder ({secret!r}); generate one with `vidora webhooks secret`"
        )
    if not secret.startswith("whsec_"):
        raise ValueError(f"{what} must start with 'whsec_' (Standard Webhooks format)")
    try:
        raw = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{what} must be 'whsec_' followed by base64") from error
    if len(raw) < MIN_WEBHOOK_SECRET_BYTES:
        raise ValueError(
            f"{what} must hold at least {MIN_WEBHOOK_SECRET_BYTES} random bytes, not {len(raw)}"
        )


def _env_name(field_name: str) -> str:
    return "VIDORA_" + field_name.upper()


def _parse(name: str, annotation: Any, raw: str) -> Any:
    """Convert one environment string to the field's type, naming the variable on failure."""
    kind = str(annotation)
    try:
        if "bool" in kind:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
        if "Path" in kind:
            return Path(raw) if raw else None
        if "None" in kind:
            return raw or None
        return raw
    except ValueError as error:
        raise ValueError(f"{_env_name(name)}={raw!r} is not valid: {error}") from error


def _check_positive(settings: Settings, *names: str) -> None:
    for name in names:
        if getattr(settings, name) <= 0:
            raise ValueError(f"{_env_name(name)} must be positive, got {getattr(settings, name)}")
