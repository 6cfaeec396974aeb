"""The one error hierarchy of emberlake.

Every error a user can see derives from :class:`EmberlakeError`; its message says what was wrong
and, where there is one, what to do about it. The CLI turns these into exit codes in one place.
"""

from __future__ import annotations


class EmberlakeError(Exception):
    """Root of every error emberlake raises on purpose."""

    exit_code = 1


class ConfigError(EmberlakeError):
    """A setting is missing, malformed or contradicts another."""

    exit_code = 2


class BrokerError(EmberlakeError):
    """The Kafka-protocol broker could not be started, reached or used."""


class BrokerUnavailable(BrokerError):
    """The broker did not confirm a delivery in time; the client should retry."""


class JournalError(BrokerUnavailable):
    """The receiver's ack journal could not be written, read or replayed; clients retry."""


class InvalidRequest(EmberlakeError):
    """An OTLP request could not be decoded or violates the protocol."""


class RequestTooLarge(InvalidRequest):
    """An OTLP request is larger than the configured limit."""


class UnsupportedMediaType(InvalidRequest):
    """An OTLP/HTTP request uses a content type or content encoding the receiver cannot read."""


class ReceiverUnavailable(EmberlakeError):
    """The OTLP receiver could not be reached by a client such as ``emberlake demo``."""


class TenantError(EmberlakeError):
    """A tenant name is invalid or the caller may not act for that tenant."""


class Unauthenticated(TenantError):
    """The request carried no valid credentials while authentication is on."""


class LakeError(EmberlakeError):
    """An Iceberg table could not be read, evolved or committed."""


class CommitConflict(LakeError):
    """Another writer changed the offsets this writer expected to own; the batch was dropped."""


class UnstorableRecords(LakeError):
    """A batch holds a record the lake cannot store; it is read again one record at a time."""


class SchemaInferenceError(LakeError):
    """Promoted attribute columns disagree with the table schema beyond any legal evolution."""


class QueryError(EmberlakeError):
    """A SQL query failed to run."""


class QueryRejected(QueryError):
    """A SQL query was refused because it is not a read-only query over the tenant's tables."""


class QueryTimeout(QueryError):
    """A SQL query ran past its time limit and was cancelled."""


class QueryCancelled(QueryError):
    """A SQL query was cancelled because its client went away."""


class InvalidSQL(QueryError):
    """A SQL query could not be parsed or bound (syntax error, unknown column, wrong types)."""


class QuerydUnavailable(QueryError):
    """The query daemon could not be reached over HTTP."""


class NotFound(EmberlakeError):
    """A named table or resource does not exist."""


class ResourceError(EmberlakeError):
    """A request to the resource API was refused; the message says why."""


class InvalidArgument(ResourceError):
    """A resource name, filter, field mask, page token or body is malformed."""


class AlreadyExists(ResourceError):
    """A resource with that name already exists; pick another id or update it instead."""


class EtagMismatch(ResourceError):
    """The resource changed since it was read (etag mismatch): read it again, then retry."""


class FailedPrecondition(ResourceError):
    """The resource is not in a state that allows this request (e.g. it still has children)."""


class SessionError(EmberlakeError):
    """An agent session or its object store is missing, unreadable or inconsistent."""


class CorruptObject(SessionError):
    """A stored session object does not match its content address; the store was tampered with."""


class SandboxUnavailable(EmberlakeError):
    """The shell tool's sandbox cannot be built here, so the tool is disabled."""


class ModelError(EmberlakeError):
    """The language model could not be reached or returned something unusable."""


class ToolUnavailable(EmberlakeError):
    """A service an agent tool needs cannot be reached now; the step is retried later."""


class ModelRejected(ModelError):
    """The model API refused the request itself (invalid, too long); a retry cannot help."""
