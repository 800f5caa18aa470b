"""The domain without I/O: Standard Webhooks signatures, the retry schedule, what each attempt's
outcome makes of a delivery, the URL rules, the secrets cipher and the settings' guards."""

import base64
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from webhook_service.adapters.cipher import cipher_from
from webhook_service.adapters.sender import signed_headers
from webhook_service.config import Settings
from webhook_service.domain.deliveries import (
    DEFAULT_RETRY_DELAYS,
    Delivery,
    DeliveryStatus,
    Outcome,
    RetrySchedule,
    outcome_of_status,
)
from webhook_service.domain.errors import (
    InvalidWebhookUrl,
    UnreadableSecret,
    WebhookUrlRefused,
)
from webhook_service.domain.webhooks import SECRET_PREFIX, UrlPolicy, check_url, new_secret

NOW = datetime(2026, 12, 12, 10, 0, tzinfo=UTC)


# --- signatures -----------------------------------------------------------------------------


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks specification (and its libraries' tests).
    headers = signed_headers(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        b'{"test": 2432232314}',
        datetime.fromtimestamp(1614265330, tz=UTC),
    )
    assert headers == {
        "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "webhook-timestamp": "1614265330",
        "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    }


def test_a_signature_verifies_with_the_secret_and_fails_when_anything_changes() -> None:
    secret, other = new_secret(), new_secret()
    body = b'{"type":"job.succeeded","data":{"job_id":"x"}}'
    now = datetime.now(UTC)
    headers = signed_headers(secret, "msg_1", body, now)
    assert Verifier(secret).verify(body, headers) == {
        "type": "job.succeeded",
        "data": {"job_id": "x"},
    }
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body.replace(b"x", b"y"), headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(other).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Verifier(secret).verify(body, {**headers, "webhook-id": "msg_2"})


def test_new_secrets_are_whsec_and_32_random_bytes() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith(SECRET_PREFIX)
        assert len(base64.b64decode(secret.removeprefix(SECRET_PREFIX))) == 32


# --- the retry schedule ---------------------------------------------------------------------


def test_the_default_schedule_is_eight_attempts_from_5_seconds_to_6_hours() -> None:
    schedule = RetrySchedule()
    assert schedule.max_attempts == 8
    waits = [schedule.delay_after(n) for n in range(1, 8)]
    assert waits == [timedelta(seconds=s) for s in (5, 30, 120, 600, 3600, 10800, 21600)]
    assert schedule.delay_after(8) is None
    assert schedule.delay_after(9) is None


@pytest.mark.parametrize("attempt", range(1, 8))
def test_jitter_stays_within_a_fifth_of_the_delay(attempt: int) -> None:
    schedule = RetrySchedule()
    base = DEFAULT_RETRY_DELAYS[attempt - 1]
    low = schedule.delay_after(attempt, jitter=-1)
    high = schedule.delay_after(attempt, jitter=1)
    assert low == timedelta(seconds=base * 0.8)
    assert high == timedelta(seconds=base * 1.2)
    # Out-of-range jitter is clamped.
    assert schedule.delay_after(attempt, jitter=5) == high


def test_retry_after_lengthens_the_wait_up_to_an_hour_never_shortens_it() -> None:
    schedule = RetrySchedule()
    assert schedule.delay_after(1, retry_after=90) == timedelta(seconds=90)
    assert schedule.delay_after(2, retry_after=1) == timedelta(seconds=30)
    assert schedule.delay_after(1, retry_after=10**6) == timedelta(hours=1)


# --- outcomes -------------------------------------------------------------------------------


def _delivery(*, retries: bool = True) -> Delivery:
    return Delivery(
        id=uuid.uuid4(),
        webhook_id=uuid.uuid4(),
        user_id="alice",
        event_id=uuid.uuid4(),
        event_type="job.succeeded",
        body=b"{}",
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=NOW,
        created_at=NOW,
        retries=retries,
    )


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(s, True) for s in (500, 502, 503, 429, 408)],
        *[(s, False) for s in (400, 401, 404, 410, 301, 302)],
    ],
)
def test_which_statuses_are_tried_again(status: int, retryable: bool) -> None:
    outcome = outcome_of_status(status, 12)
    assert not outcome.delivered
    assert outcome.retryable is retryable
    assert outcome.error is not None
    assert str(status) in outcome.error


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_delivers(status: int) -> None:
    delivery = _delivery()
    attempt = delivery.record(
        outcome_of_status(status, 3), now=NOW, schedule=RetrySchedule(), jitter=0
    )
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.delivered_at == NOW
    assert delivery.next_attempt_at is None
    assert attempt.number == 1
    assert attempt.next_retry_at is None


def test_a_retryable_failure_is_due_again_after_the_back_off_until_the_attempts_run_out() -> None:
    delivery = _delivery()
    schedule = RetrySchedule((1, 2, 3))
    now = NOW
    for n, wait in enumerate((1, 2, 3), start=1):
        attempt = delivery.record(outcome_of_status(503, 5), now=now, schedule=schedule, jitter=0)
        assert attempt.number == n
        assert delivery.status is DeliveryStatus.PENDING
        assert attempt.next_retry_at == now + timedelta(seconds=wait)
        assert delivery.next_attempt_at == attempt.next_retry_at
    last = delivery.record(outcome_of_status(503, 5), now=now, schedule=schedule, jitter=0)
    assert last.number == 4
    assert last.next_retry_at is None
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_status_code == 503


def test_a_client_error_fails_for_good_at_once() -> None:
    delivery = _delivery()
    delivery.record(outcome_of_status(404, 5), now=NOW, schedule=RetrySchedule(), jitter=0)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 1


def test_timeouts_and_connection_errors_are_retried_refusals_are_not() -> None:
    delivery = _delivery()
    delivery.record(
        Outcome(None, "timed out", True, 10_000), now=NOW, schedule=RetrySchedule(), jitter=0
    )
    assert delivery.status is DeliveryStatus.PENDING
    delivery.record(Outcome(None, "refused", False, 1), now=NOW, schedule=RetrySchedule(), jitter=0)
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.last_error == "refused"


def test_a_ping_is_tried_once() -> None:
    delivery = _delivery(retries=False)
    delivery.record(outcome_of_status(500, 5), now=NOW, schedule=RetrySchedule(), jitter=0)
    assert delivery.status is DeliveryStatus.FAILED


# --- URL rules ------------------------------------------------------------------------------

STRICT = UrlPolicy()
LOOPBACK = UrlPolicy(allow_http_loopback=True)


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/ftd", "https://example.com:8443/a?b=c", "https://8.8.8.8/x"]
)
def test_public_https_urls_pass(url: str) -> None:
    assert check_url(url, STRICT) == url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("https://10.0.0.1/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link_local"),
        ("https://127.0.0.1/hook", "loopback"),
        ("https://0x7f000001/hook", "loopback"),
        ("https://[::1]/hook", "loopback"),
        ("https://[::ffff:10.0.0.1]/hook", "private"),
        ("https://192.168.1.10/hook", "private"),
        ("https://metadata.google.internal/computeMetadata", "metadata"),
        ("https://localhost/hook", "local_name"),
        ("https://db.cluster.local/hook", "local_name"),
        ("https://hookbox/hook", "single_label"),
    ],
)
def test_internal_hosts_are_refused(url: str, kind: str) -> None:
    with pytest.raises(WebhookUrlRefused) as refused:
        check_url(url, STRICT)
    assert refused.value.code == "webhook_url_refused"
    assert refused.value.status == 422
    assert refused.value.details == {"field": "url", "kind": kind}


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/ftd",
        "ftp://hooks.example.com/ftd",
        "hooks.example.com/ftd",
        "https:///path",
        "https://user:pass@hooks.example.com/",
        "https://hooks.example.com/#frag",
        "https://hooks.example.com:99999/",
        "https://hooks.example.com/a b",
        "https://hooks.example.com/" + "a" * 2100,
    ],
)
def test_malformed_or_plain_http_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidWebhookUrl) as invalid:
        check_url(url, STRICT)
    assert invalid.value.code == "webhook_url_invalid"
    assert invalid.value.status == 422


def test_loopback_over_http_only_with_the_development_setting() -> None:
    for url in ("http://127.0.0.1:8123/hook", "http://localhost:9/x", "http://[::1]:80/"):
        with pytest.raises((InvalidWebhookUrl, WebhookUrlRefused)):
            check_url(url, STRICT)
        assert check_url(url, LOOPBACK) == url
    # The setting opens the loopback, nothing else.
    with pytest.raises(InvalidWebhookUrl):
        check_url("http://hooks.example.com/", LOOPBACK)
    with pytest.raises(WebhookUrlRefused):
        check_url("https://10.0.0.1/", LOOPBACK)


def test_an_operator_allow_list_lifts_the_host_rules_not_https() -> None:
    policy = UrlPolicy(allowed_hosts=(".corp.example",))
    assert check_url("https://hooks.corp.example/x", policy)
    with pytest.raises(InvalidWebhookUrl):
        check_url("http://hooks.corp.example/x", policy)


# --- secrets at rest ------------------------------------------------------------------------


def test_the_cipher_round_trips_hides_its_keys_and_rotates() -> None:
    old = cipher_from("old-key-0123456789abcdefghijklmnop", development_secret=None)
    secret = new_secret()
    stored = old.encrypt(secret)
    assert secret not in stored
    assert old.decrypt(stored) == secret
    assert "old-key" not in repr(old)
    rotated = cipher_from(
        "new-key-0123456789abcdefghijklmnop,old-key-0123456789abcdefghijklmnop",
        development_secret=None,
    )
    assert rotated.decrypt(stored) == secret
    other = cipher_from("new-key-0123456789abcdefghijklmnop", development_secret=None)
    with pytest.raises(UnreadableSecret):
        other.decrypt(stored)


# --- settings -------------------------------------------------------------------------------

_BASE = {
    "jwt_secret": "test-jwt-secret-0123456789abcdef",
    "db_password": "a-real-password-8c1f",
    "database_url": "postgresql://webhook_service:a-real-password-8c1f@db/finetune",
}


def test_the_secrets_key_is_required_outside_development() -> None:
    with pytest.raises(ValidationError, match="WEBHOOK_SERVICE_SECRETS_KEY"):
        Settings(environment="test", **_BASE)
    assert Settings(environment="development", **_BASE).secrets_key is None


def test_http_loopback_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="ALLOW_HTTP_LOOPBACK"):
        Settings(
            environment="production",
            allow_http_loopback=True,
            secrets_key="Zq8v1XcR4mT7yB2nK5pW9sD3fH6jL0aE",
            jwt_secret="Hk3mP8wQ1zT6vY9cB4nR7xJ2sD5fG0aL",
            amqp_url="amqp://ftd:Vb7Rt2Qx9Lm4Kp1Z@broker:5672/",
            database_url="postgresql://webhook_service:Pq9wX2mK7tV4zR1c@db/finetune",
            db_password="Pq9wX2mK7tV4zR1c",
        )
