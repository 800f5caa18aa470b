"""The creation-time check of external data URLs (no I/O: only the URL's text is judged)."""

import pytest

from job_api.domain.errors import InvalidJob
from job_api.service_layer.data_urls import check_external_data_url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://10.0.0.1/data.csv", "private"),
        ("https://127.0.0.1:5432/", "loopback"),
        ("https://0x7f000001/", "loopback"),
        ("https://2130706433/", "loopback"),
        ("https://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("https://fileserver/data.csv", "single-label"),
    ],
)
def test_internal_hosts_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(InvalidJob) as refused:
        check_external_data_url(url, ())

    assert refused.value.code == "data_url_refused"
    assert refused.value.field == "training_data_url"
    message = str(refused.value)
    assert why in message
    # The sentence says why, never what the user sent.
    host = url.split("/")[2]
    assert host not in message


def test_public_hosts_pass() -> None:
    check_external_data_url("https://storage.googleapis.com/bucket/data.csv?X-Goog-Signature=a", ())
    check_external_data_url("https://data.example.com/train.csv", ())


def test_the_operators_allow_list_exempts_hosts_and_suffixes() -> None:
    allowed = ("files.internal", ".corp.lan")
    check_external_data_url("https://files.internal/data.csv", allowed)
    check_external_data_url("https://data.corp.lan/data.csv", allowed)
    with pytest.raises(InvalidJob):
        check_external_data_url("https://other.internal/data.csv", allowed)
