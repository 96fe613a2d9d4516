"""Process settings from the environment (prefix HOOKYARD_, nested with __).

Sources (which webhooks we accept) live in a TOML file, see `events.sources`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.errors import ConfigError

DATA_DIR = Path(".hookyard")
IDS_PER_MESSAGE = 10  # event ids a broker message carries: fewer round trips, still spread over workers
# `hookyard dev` (SQLite, one writer at a time): fewer, larger claim and finish transactions cost the
# worker half the CPU per event (BENCHMARKS.md, "The embedded default")
EMBEDDED_IDS_PER_MESSAGE = 50


class IngressSettings(BaseModel):
    max_body_bytes: int = 10 * 1024 * 1024
    max_header_bytes: int = 16 * 1024  # all header names and values together; more gets 431
    retry_after_s: int = 5  # told to vendors when we cannot persist (503)
    batch_max: int = 500  # rows per inbox transaction (group commit)
    writers: int = 2  # inbox transactions in flight at once
    max_pending: int = 20_000  # requests waiting for the inbox beyond this are shed with 429
    publish_linger_s: float = 0.02  # wait this long for more ids before a publish (batches them)
    # SIGTERM: take no new connections, answer the requests in flight, then stop; a request still
    # unanswered after this long is cut (it was not acknowledged: the vendor retries it)
    shutdown_grace_s: int = Field(default=20, ge=1, le=600)


class WorkerSettings(BaseModel):
    lease_s: float = 120.0  # a claimed event is re-driven when its lease expires
    concurrency: int = 2
    fault_delay_s: float = 0.0  # failure drills only: hold each lease this long before finishing
    fault_delay_before_action_s: float = 0.0  # failure drills only: claimed, not yet acted
    fault_delay_after_action_s: float = 0.0  # failure drills only: acted and recorded, task not acked


class BeatSettings(BaseModel):
    # Any number of `hookyard beat` may run; the one holding this lease (a database row) sends. It
    # renews every lease_s / 4; a standby takes over within 1.25 × lease_s of the leader's death.
    lease_s: float = Field(default=20.0, ge=1.0, le=45.0)


class RabbitMQSettings(BaseModel):
    """Only when the broker is RabbitMQ (`amqp://`, `amqps://`, `pyamqp://`); docs/operations.md."""

    # None: quorum queues whenever the broker is RabbitMQ; false keeps classic queues (a broker that
    # already has Hookyard's classic queues refuses a quorum redeclaration until they are deleted)
    quorum_queues: bool | None = None
    # redeliveries of one message (a worker killed mid-task each time) before it goes to the
    # dead-letter exchange instead of looping; its events stay in the database and are relayed
    delivery_limit: int = Field(default=10, ge=1)
    dead_letter_max: int = Field(default=100_000, ge=1)  # kept in hookyard.dead-letters, oldest dropped
    heartbeat_s: int = Field(default=60, ge=0)  # the workers' AMQP heartbeat; 0 turns it off


class RulesSettings(BaseModel):
    flags_cache_s: float = 5.0  # workers read the runtime flags at most this often


class RelaySettings(BaseModel):
    interval_s: float = 5.0  # how often beat runs the relay
    grace_s: float = 30.0  # an unfinished event is republished this long after it was last published
    batch: int = 1000


class RetentionSettings(BaseModel):
    processed_days: float = 30.0  # done events (and their dedupe keys); never under 7 days
    dead_letter_days: float = 90.0  # dead letters, handled or not
    interval_s: float = 3600.0


class MetricsSettings(BaseModel):
    # Each `hookyard web` / `hookyard worker` keeps its processes' metric files in a directory of its
    # own under this one; `/metrics` on the web app adds up every directory here (one machine).
    dir: Path = DATA_DIR / "metrics"
    inbox_cache_s: float = 5.0  # the inbox gauges are read from the database at most this often
    check_timeout_s: float = 2.0  # /readyz checks and the inbox gauges' query give up after this


class OAuthSettings(BaseModel):
    # where vendors send the browser back: {public_url}/oauth/{source}/callback (register it there)
    public_url: str = "http://127.0.0.1:8000"
    state_ttl_s: float = 600.0  # an install must come back within this
    refresh_wait_s: float = 30.0  # a caller waits this long for a refresh running elsewhere
    refresh_lease_s: float = 60.0  # SQLite: a refresh lease whose holder died expires after this
    http_timeout_s: float = 15.0  # token endpoint calls; under refresh_lease_s and refresh_wait_s


class SyncSettings(BaseModel):
    lease_s: float = 120.0  # a run's lease on its stream, extended at every checkpoint
    slice_s: float = 300.0  # a run checkpoints and frees its worker after this long, then goes on
    sweep_interval_s: float = 5.0  # how often beat looks for runs to go on (resume_at, dead workers)
    requeue_s: float = 60.0  # a run sent by the sweeper but not started after this is sent again
    breaker_failures: int = 5  # failures in a row that open a vendor account's circuit breaker
    breaker_open_s: float = 30.0  # how long it stays open before one probe may go


class MonitorSettings(BaseModel):
    interval_s: float = 60.0  # how often beat judges every source's health, SLAs and anomalies
    window_s: float = 3600.0  # the health score's window
    counts_flush_s: float = 5.0  # how often each process writes its counts (API calls, refusals)


class UiSettings(BaseModel):
    # Signs the dashboard's session cookies; unset, a random key is made once and kept in the database
    # (table app_secrets), so every web process on every machine shares it.
    secret_key: SecretStr | None = None
    session_hours: float = 12.0
    secure_cookie: bool = False  # set it when the dashboard is served over HTTPS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HOOKYARD_", env_nested_delimiter="__", extra="ignore")

    config: Path = Path("hookyard.toml")
    secrets_file: Path | None = DATA_DIR / "secrets.env"
    # secret: a URL may carry a password; read it with .get_secret_value()
    database_url: SecretStr = SecretStr(f"sqlite:///{DATA_DIR}/hookyard.db")
    broker_url: SecretStr = SecretStr(f"sqlite:///{DATA_DIR}/broker.db")  # the embedded broker, events.broker
    ids_per_message: int = Field(default=IDS_PER_MESSAGE, ge=1)
    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    beat: BeatSettings = Field(default_factory=BeatSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    oauth: OAuthSettings = Field(default_factory=OAuthSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    # the vendor APIs' shared rate budgets and circuit breakers; unset: the broker's, when it is Redis
    redis_url: SecretStr | None = None
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    ui: UiSettings = Field(default_factory=UiSettings)
    rabbitmq: RabbitMQSettings = Field(default_factory=RabbitMQSettings)

    @property
    def on_rabbitmq(self) -> bool:
        return is_rabbitmq(self.broker_url.get_secret_value())

    @property
    def quorum_queues(self) -> bool:
        """Quorum queues with a dead-letter exchange: RabbitMQ's unless switched off."""
        return self.on_rabbitmq and self.rabbitmq.quorum_queues is not False

    @model_validator(mode="after")
    def _quorum_needs_rabbitmq(self) -> Settings:
        if self.rabbitmq.quorum_queues and not self.on_rabbitmq:
            raise ValueError(
                "HOOKYARD_RABBITMQ__QUORUM_QUEUES=true needs a RabbitMQ broker (HOOKYARD_BROKER_URL=amqp://…)"
            )
        return self


AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})


def is_rabbitmq(broker_url: str) -> bool:
    return urlsplit(broker_url).scheme in AMQP_SCHEMES


@cache
def get_settings() -> Settings:
    """The process's settings; a value that cannot work is a ConfigError naming its variable."""
    try:
        return Settings()
    except ValidationError as exc:
        err = exc.errors()[0]
        message = err["msg"].removeprefix("Value error, ")
        if not err["loc"]:
            raise ConfigError(message) from None
        name = "HOOKYARD_" + "__".join(str(part) for part in err["loc"]).upper()
        raise ConfigError(f"{name}: {message}") from None
