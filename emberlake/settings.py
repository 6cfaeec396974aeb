"""The one settings object.

Settings are loaded once, from a TOML file and then ``EMBERLAKE_*`` environment variables, and
passed down. Nothing else in emberlake reads the environment.

Precedence (last wins): defaults, the file, the environment. The file is ``$EMBERLAKE_CONFIG`` if
set, else ``./emberlake.toml`` if it exists. Its tables are the sections below::

    data_dir = "./emberlake-data"

    [kafka]
    bootstrap_servers = "kafka-1:9092,kafka-2:9092"

An environment variable names a section and a field: ``EMBERLAKE_KAFKA_BOOTSTRAP_SERVERS``,
``EMBERLAKE_QUERYD_PORT``; top-level fields drop the section: ``EMBERLAKE_DATA_DIR``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emberlake.errors import ConfigError

ENV_PREFIX = "EMBERLAKE_"


@dataclass(frozen=True)
class KafkaSettings:
    """Where the Kafka-protocol broker is and how topics are laid out."""

    #: Empty means: start and use the embedded broker.
    bootstrap_servers: str = ""
    #: Port of the embedded broker (only used when bootstrap_servers is empty).
    embedded_port: int = 9092
    #: The embedded broker keeps every record in memory and supports no retention; above this
    #: size the supervisor drains it into the lake and starts it afresh.
    embedded_max_memory_mb: int = 1024
    topic_prefix: str = "emberlake"
    partitions: int = 4
    replication_factor: int = 1
    #: Group-join time on the embedded broker is session.timeout.ms / 2, so keep it short.
    session_timeout_ms: int = 6000
    compression: str = "lz4"
    linger_ms: int = 5
    #: How long the receiver waits for the broker to confirm a delivery before answering 503.
    delivery_timeout_ms: int = 15000
    #: Extra librdkafka properties for every client, "key=value,key=value" (e.g. SASL settings).
    extra: str = ""


@dataclass(frozen=True)
class ReceiverSettings:
    """The OTLP receiver: ports, limits and tenancy."""

    host: str = "127.0.0.1"
    grpc_port: int = 4317
    http_port: int = 4318
    max_request_bytes: int = 16 * 1024 * 1024
    default_tenant: str = "default"
    #: Bearer tokens mapped to tenants, "token=tenant,token=tenant". When set, auth is on.
    tokens: str = ""
    #: Ack journal (data_dir/receiver/journal): every record Kafka acknowledged is also written
    #: to local segment files before the client is answered, and produced again to a new broker
    #: after a restart, so a memory-backed broker's crash loses nothing acknowledged. "auto" is
    #: on exactly with the embedded broker (real Kafka is durable itself); "on"; "off".
    journal: str = "auto"
    #: fsync every journal write. Off, a write survives the receiver or the broker dying but
    #: not a power loss or kernel crash; on, it survives those too, at a cost per request.
    journal_fsync: bool = False
    #: A journal segment is closed once this big or this old; closed ones are deleted once the
    #: lake's checkpoints cover them, checked every journal_trim_seconds.
    journal_segment_bytes: int = 64 * 1024 * 1024
    journal_segment_seconds: float = 30.0
    journal_trim_seconds: float = 5.0


@dataclass(frozen=True)
class LakeSettings:
    """The Iceberg lake: catalog, warehouse, batching and maintenance."""

    #: SQLAlchemy URI of the SQL catalog; empty means SQLite under data_dir.
    catalog_uri: str = ""
    #: Warehouse location (file:// path or s3://bucket/prefix); empty means data_dir/warehouse.
    warehouse: str = ""
    catalog_name: str = "emberlake"
    #: Extra catalog properties, "key=value,key=value" (s3.endpoint, s3.access-key-id, ...).
    catalog_properties: str = ""
    batch_max_rows: int = 100_000
    batch_max_seconds: float = 2.0
    writer_group: str = "emberlake-writer"
    #: Request ids remembered per partition to recognise a request a client sent again (see
    #: lake.dedupe). A writer taking over a partition re-reads this many records before its
    #: checkpoint, only to remember them, so a restart does not forget what came just before.
    dedupe_records: int = 20_000
    #: Snapshots newer than this are never expired. Commit cost grows with the snapshots a
    #: table keeps (hundreds of ms at 500), and at one commit per batch interval a long window
    #: keeps many; queries read the current snapshot and re-plan when a file vanished.
    snapshot_retain_seconds: float = 60.0
    #: Expire snapshots every this many commits per table.
    expire_every_commits: int = 20
    snapshots_keep_min: int = 5
    compact_interval_seconds: float = 60.0
    compact_target_file_bytes: int = 128 * 1024 * 1024
    #: Files below this are candidates for compaction.
    compact_small_file_bytes: int = 32 * 1024 * 1024
    compact_min_files: int = 4
    #: Adaptive layout: how often the maintainer reviews each table's layout (0 = never).
    layout_interval_seconds: float = 900.0
    #: Apply layout proposals automatically; when off, `emberlake partitioning apply` does it.
    layout_auto_apply: bool = True
    #: Split day partitions into hours once a day holds this many bytes.
    layout_day_split_bytes: int = 512 * 1024 * 1024
    #: Partition by service only while a table has at most this many services.
    layout_max_services: int = 16
    #: A column counts as frequently filtered when this share of a table's queries filter on it,
    layout_filter_share: float = 0.2
    #: ... and only once the query log holds this many queries of the table.
    layout_min_queries: int = 20
    layout_max_trace_buckets: int = 16
    #: Add a partition field only while a busy day's partitions stay this large on average.
    layout_min_partition_bytes: int = 16 * 1024 * 1024
    #: How far back the layout policy reads the query log.
    layout_querylog_seconds: float = 86400.0
    #: What opening one more file costs a scan, in bytes it could have read meanwhile (an
    #: engine and storage constant, like Spark's openCostInBytes): the layout policy weighs
    #: the files a partition change adds against the bytes it lets queries skip.
    layout_file_open_bytes: int = 4 * 1024 * 1024
    #: The time window the layout policy assumes a time-filtered query reads.
    layout_time_window_seconds: float = 3600.0
    #: Unreferenced files younger than this are kept: a writer may be about to commit them.
    orphan_min_age_seconds: float = 600.0
    orphan_interval_seconds: float = 3600.0
    max_promoted_columns: int = 64
    #: An attribute key gets a typed column once it occurred this often, in this many batches,
    #: and in this fraction of the rows seen since it first appeared.
    promote_min_rows: int = 20
    promote_min_batches: int = 2
    promote_min_fraction: float = 0.01


@dataclass(frozen=True)
class QuerydSettings:
    """The SQL query daemon."""

    host: str = "127.0.0.1"
    port: int = 8080
    timeout_seconds: float = 30.0
    max_rows: int = 100_000
    threads: int = 2
    memory_limit: str = "2GB"
    #: Queries run at once (each with its own DuckDB using ``threads`` threads); more wait.
    concurrency: int = 4
    #: Query log bytes per tenant and day logged in full; past it, queries are sampled (each
    #: kept line stands for several queries) and the day's file stops growing at twice this.
    querylog_day_bytes: int = 32 * 1024 * 1024
    #: Tables whose loaded metadata is kept between queries (per tenant and table, reused while
    #: the catalog points at the same metadata file; ~200 KB each with 40 snapshots kept).
    #: 0: every query loads and parses each table's metadata again.
    table_cache_entries: int = 256
    #: Checked statements kept per tenant and SQL text (up to 8 KiB of SQL each), and the
    #: literal time bounds evaluated in them, so a repeated query is not parsed again. 0: off.
    statement_cache_entries: int = 256


@dataclass(frozen=True)
class AgentSettings:
    """Anomaly detectors and investigator agents."""

    anthropic_api_key: str = ""
    anthropic_base_url: str = ""
    model: str = "claude-sonnet-4-5"
    max_tokens: int = 2048
    tenant_token_budget: int = 2_000_000
    max_steps: int = 12
    #: Where sessions live: empty = data_dir/sessions, a folder, file:///path or s3://bucket/prefix.
    sessions_url: str = ""
    #: Options of an s3:// sessions store, "endpoint_url=...,region=...,access_key_id=...,..."
    sessions_options: str = ""
    #: Stream model responses (messages.stream) instead of one request per turn.
    anthropic_streaming: bool = False
    anthropic_max_retries: int = 2
    #: How often the agent worker looks for open investigations and pending approvals.
    worker_poll_seconds: float = 2.0
    #: A worker's lease on a session it steps; renewed every third of this, taken over after it.
    session_lease_seconds: float = 30.0
    #: This worker's name on leases, so a restarted worker takes its own leases back at once.
    #: Empty: hostname plus an id kept in data_dir, and a slot number per live worker there.
    worker_id: str = ""
    shell_timeout_seconds: float = 20.0
    shell_memory_mb: int = 512
    shell_max_processes: int = 64
    detector_window_seconds: float = 10.0
    detector_warmup_windows: int = 6
    detector_min_requests: int = 20
    detector_z_threshold: float = 4.0
    detector_error_rate_floor: float = 0.05
    #: A window closes once the service's newest event time passes its end by this much.
    detector_lateness_seconds: float = 10.0
    #: A window of a service that went quiet closes after this much wall time without records.
    detector_idle_seconds: float = 30.0
    #: Score the windows a silent service leaves empty while it is silent, so a service that
    #: stops sending shows a request-rate drop without waiting for its traffic to resume.
    detector_silence_alerts: bool = True
    #: A metric anomalous this many windows in a row is taken as having a new normal and its
    #: baseline learns from it; shorter incidents teach the baselines nothing.
    detector_adapt_after_windows: int = 30
    #: Largest number of records the detectors fold into one state commit.
    detector_batch_records: int = 500
    #: Longest wait for a batch to fill before it is processed anyway.
    detector_batch_seconds: float = 0.5
    #: Where resources live: empty = SQLite at data_dir/resources.db, or sqlite:///path.
    resources_uri: str = ""
    incident_window_seconds: float = 600.0


@dataclass(frozen=True)
class Settings:
    """Everything emberlake can be told, in typed sections."""

    data_dir: str = "./emberlake-data"
    log_level: str = "INFO"
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    receiver: ReceiverSettings = field(default_factory=ReceiverSettings)
    lake: LakeSettings = field(default_factory=LakeSettings)
    queryd: QuerydSettings = field(default_factory=QuerydSettings)
    agents: AgentSettings = field(default_factory=AgentSettings)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def catalog_uri(self) -> str:
        return self.lake.catalog_uri or f"sqlite:///{self.data_path / 'catalog.db'}"

    @property
    def warehouse(self) -> str:
        return self.lake.warehouse or (self.data_path / "warehouse").as_uri()

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka.bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka.bootstrap_servers or f"127.0.0.1:{self.kafka.embedded_port}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with top-level fields or whole sections replaced."""
        return dataclasses.replace(self, **changes)


_SECTIONS: dict[str, type] = {
    f.name: typing.get_type_hints(Settings)[f.name]
    for f in dataclasses.fields(Settings)
    if dataclasses.is_dataclass(typing.get_type_hints(Settings)[f.name])
}


def parse_pairs(text: str) -> dict[str, str]:
    """Parse "a=1,b=2" into a dict; used for token maps and extra client properties."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _coerce(kind: Any, raw: Any, where: str) -> Any:
    try:
        if kind is bool:
            if isinstance(raw, str):
                lowered = raw.strip().lower()
                if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                    raise ValueError(raw)
                return lowered in {"1", "true", "yes", "on"}
            return bool(raw)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {kind.__name__}, got {raw!r}") from None


def _build(cls: type, values: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {sorted(unknown)}; known: {sorted(names)}")
    kwargs: dict[str, Any] = {}
    for name, raw in values.items():
        kind = hints[name]
        if isinstance(kind, type) and dataclasses.is_dataclass(kind):
            if not isinstance(raw, Mapping):
                raise ConfigError(f"{where}.{name}: expected a table")
            kwargs[name] = _build(kind, raw, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(kind, raw, f"{where}.{name}")
    return cls(**kwargs)


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    top = {f.name for f in dataclasses.fields(Settings)} - set(_SECTIONS)
    out: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        rest = key[len(ENV_PREFIX) :].lower()
        section, _, name = rest.partition("_")
        if section in _SECTIONS and name:
            out.setdefault(section, {})[name] = value
        elif rest in top:
            out[rest] = value
        else:
            raise ConfigError(f"unknown environment setting {key}")
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load_settings(
    environ: Mapping[str, str] | None = None, config_file: str | Path | None = None
) -> Settings:
    """Load settings from the config file and ``EMBERLAKE_*`` variables (see module docs)."""
    env = os.environ if environ is None else environ
    path: Path | None = None
    if config_file is not None:
        path = Path(config_file)
    elif env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    elif Path("emberlake.toml").is_file():
        path = Path("emberlake.toml")
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values = _merge(values, _env_values(env))
    settings: Settings = _build(Settings, values, "settings")
    return settings


def to_env(settings: Settings) -> dict[str, str]:
    """Render settings as ``EMBERLAKE_*`` variables, so child processes see the same settings."""
    env: dict[str, str] = {}
    for f in dataclasses.fields(settings):
        value = getattr(settings, f.name)
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                env[f"{ENV_PREFIX}{f.name.upper()}_{sub.name.upper()}"] = str(
                    getattr(value, sub.name)
                )
        else:
            env[f"{ENV_PREFIX}{f.name.upper()}"] = str(value)
    return env
