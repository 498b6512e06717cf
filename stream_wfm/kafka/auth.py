"""Kafka authentication that pass-through properties cannot express: ``STREAM_WFM_KAFKA_AUTH``.

``none`` adds nothing (SASL/PLAIN, SCRAM and mTLS are plain ``STREAM_WFM_KAFKA__*``
properties, docs/kafka.md). ``msk-iam`` authenticates to Amazon MSK with IAM: SASL/OAUTHBEARER
over TLS, each token signed by ``aws-msk-iam-sasl-signer-python`` (the ``msk-iam`` extra)
with the AWS credentials of the default chain (environment, web identity such as EKS IRSA,
instance profile...) for ``STREAM_WFM_AWS_REGION``. :func:`auth_config` is part of every
client's configuration (kafka/config.py), so every client — the service's, the config
store's, the tools' and the console's — gets the callback.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

from stream_wfm.errors import SettingsError
from stream_wfm.settings import MSK_IAM_EXTRA_MISSING, MSK_IAM_SIGNER, Settings

log = logging.getLogger(__name__)

#: The signer's module with ``generate_auth_token(region) -> (token, expiry_ms)``.
SIGNER_MODULE = f"{MSK_IAM_SIGNER}.MSKAuthTokenProvider"

#: confluent-kafka's ``oauth_cb``: called with ``sasl.oauthbearer.config``, returns the token
#: and its expiry in seconds since the epoch.
OAuthCallback = Callable[[str], tuple[str, float]]


def msk_iam_oauth_cb(region: str) -> OAuthCallback:
    """An ``oauth_cb`` returning a fresh MSK IAM token for ``region``.

    librdkafka calls it (on a background thread) before the first connection and again
    before the token expires (the signer's tokens last 15 minutes). The signer's function is
    looked up at each call, so a test can replace it. A failure is logged here, with its
    reason, and raised: confluent-kafka then reports a token failure to librdkafka, which
    retries; without any token a client's creation fails after 10 s.
    """
    try:
        signer = importlib.import_module(SIGNER_MODULE)
    except ImportError:
        raise SettingsError(
            f"invalid setting STREAM_WFM_KAFKA_AUTH: {MSK_IAM_EXTRA_MISSING}"
        ) from None

    def oauth_cb(_config: str) -> tuple[str, float]:
        try:
            token, expiry_ms = signer.generate_auth_token(region)
        except Exception as exc:
            _log_failure(exc)
            raise
        return str(token), float(expiry_ms) / 1000.0

    return oauth_cb


def _log_failure(exc: Exception) -> None:
    # The reason is enough: the signer's (botocore's) stack says no more to an operator.
    log.error(
        "MSK IAM token not signed: %s: %s (AWS credentials come from the default chain: "
        "AWS_* variables, web identity, instance profile)",
        type(exc).__name__,
        exc,
    )


def auth_config(settings: Settings) -> dict[str, Any]:
    """The librdkafka properties ``STREAM_WFM_KAFKA_AUTH`` adds to every client."""
    if settings.kafka_auth == "msk-iam":
        if not settings.aws_region:  # the settings refuse this; a model_copy may not
            raise SettingsError("invalid setting STREAM_WFM_AWS_REGION: required with msk-iam")
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": msk_iam_oauth_cb(settings.aws_region),
        }
    return {}
