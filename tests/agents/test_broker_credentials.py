"""The detectors' Kafka credentials follow kafka.extra (pure logic)."""

from __future__ import annotations

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol, SASLMechanism

from agents.broker_credentials import broker_credentials
from emberlake.errors import ConfigError
from emberlake.settings import parse_pairs


def test_plaintext_needs_no_credentials() -> None:
    assert broker_credentials({}) is None
    assert broker_credentials({"security.protocol": "plaintext", "client.id": "x"}) is None


def test_sasl_properties_become_sasl_credentials() -> None:
    extra = parse_pairs(
        "security.protocol=SASL_PLAINTEXT,sasl.mechanism=SCRAM-SHA-512,"
        "sasl.username=writer,sasl.password=s3cret"
    )
    credentials = broker_credentials(extra)
    assert isinstance(credentials, SASLCredentials)
    assert credentials.username == "writer" and credentials.password == "s3cret"
    assert credentials.mechanism == SASLMechanism.SCRAM_SHA_512
    assert credentials.protocol == AuthProtocol.SASL_PLAINTEXT
    assert credentials.ssl_context is None


def test_sasl_over_tls_carries_a_verifying_context() -> None:
    credentials = broker_credentials(
        {"security.protocol": "SASL_SSL", "sasl.username": "u", "sasl.password": "p"}
    )
    assert isinstance(credentials, SASLCredentials)
    assert credentials.protocol == AuthProtocol.SASL_SSL
    assert credentials.ssl_context is not None and credentials.ssl_context.check_hostname


def test_tls_only() -> None:
    assert isinstance(broker_credentials({"security.protocol": "SSL"}), SSLCredentials)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sasl.kerberos.keytab": "/k"}, "cannot apply"),
        ({"security.protocol": "SASL_SSL", "sasl.mechanism": "GSSAPI"}, "GSSAPI"),
        ({"security.protocol": "QUIC"}, "QUIC"),
    ],
)
def test_what_the_detectors_cannot_honour_is_refused(extra: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        broker_credentials(extra)
