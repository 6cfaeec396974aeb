"""The detectors' Kafka credentials, from the same ``kafka.extra`` properties the other
components give librdkafka (pure logic).

faust talks to Kafka through aiokafka, which takes credentials as objects rather than
librdkafka properties. The properties understood here are the ones a SASL or TLS listener needs:
``security.protocol``, ``sasl.mechanism`` (or ``sasl.mechanisms``), ``sasl.username``,
``sasl.password`` and ``ssl.ca.location``. Any other property cannot be honoured by the detectors
and is refused, rather than connecting with less security than configured.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from emberlake.errors import ConfigError

#: librdkafka properties with no effect on how the detectors connect (tuning, client ids).
IGNORED_PREFIXES = ("client.", "socket.", "queue.", "linger.", "batch.", "compression.", "acks")
UNDERSTOOD = {
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
}
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def broker_credentials(properties: Mapping[str, str]) -> CredentialsT | None:
    """Credentials for faust's ``broker_credentials``; None for a plaintext listener."""
    unknown = sorted(
        k for k in properties if k not in UNDERSTOOD and not k.startswith(IGNORED_PREFIXES)
    )
    if unknown:
        raise ConfigError(
            f"the detectors cannot apply kafka.extra properties {', '.join(unknown)};"
            f" they understand {', '.join(sorted(UNDERSTOOD))}"
        )
    protocol = properties.get("security.protocol", "PLAINTEXT").upper()
    cafile = properties.get("ssl.ca.location")
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return SSLCredentials(ssl.create_default_context(cafile=cafile))
    if protocol not in ("SASL_PLAINTEXT", "SASL_SSL"):
        raise ConfigError(f"unknown security.protocol {protocol!r} in kafka.extra")
    mechanism = properties.get("sasl.mechanism", properties.get("sasl.mechanisms", "PLAIN"))
    if mechanism.upper() not in MECHANISMS:
        raise ConfigError(
            f"the detectors support SASL mechanisms {', '.join(MECHANISMS)}, not {mechanism!r}"
        )
    context = ssl.create_default_context(cafile=cafile) if protocol == "SASL_SSL" else None
    return SASLCredentials(
        username=properties.get("sasl.username"),
        password=properties.get("sasl.password"),
        ssl_context=context,
        mechanism=mechanism.upper(),
    )
