"""Storage connection strings (the original's form), a component's storage from its environment, FileReference JSON."""

from __future__ import annotations

import pytest

from algorun.bus.kafka.record_size import KAFKA_MESSAGE_MAX_BYTES
from algorun.storage import BadReference, FileReference, StorageConfigError, StorageSettings, parse_connection_string
from algorun.storage.settings import DEFAULT_THRESHOLD, component_settings


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ("http://AK:SK@minio:9000", ("http://minio:9000", "AK", "SK")),
        ("https://AK:SK@s3.example.com/", ("https://s3.example.com", "AK", "SK")),
        ("http://AK:abc/def+ghi@minio:9000", ("http://minio:9000", "AK", "abc/def+ghi")),
        ("http://AK:p@ss:w#rd?@minio:9000", ("http://minio:9000", "AK", "p@ss:w#rd?")),
        ("http://AK:p%40ss%2Fx@minio:9000", ("http://minio:9000", "AK", "p@ss/x")),
    ],
)
def test_connection_strings(conn: str, expected: tuple[str, str, str]) -> None:
    assert parse_connection_string(conn) == expected


@pytest.mark.parametrize("bad", ["minio:9000", "ftp://a:b@h", "http://AK@h:1", "http://a:b@h:1/path", "http://h"])
def test_bad_connection_strings(bad: str) -> None:
    with pytest.raises(StorageConfigError):
        parse_connection_string(bad)


def test_settings_from_env_prefers_the_original_variable() -> None:
    s = StorageSettings.from_env({"MC_HOST_algorun": "http://a:b/c@h:9000", "AWS_ACCESS_KEY_ID": "x"})
    assert (s.endpoint_url, s.access_key, s.host) == ("http://h:9000", "a", "h:9000")
    aws = StorageSettings.from_env({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y", "AWS_REGION": "eu"})
    assert (aws.endpoint_url, aws.access_key, aws.region) == (None, "x", "eu")


def test_explicit_fields_win_over_the_aws_environment() -> None:
    env = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"}
    settings = StorageSettings.from_env(env, region="us-west-2")
    assert settings.region == "us-west-2" and settings.access_key == "a"


def test_file_reference_json_matches_the_original() -> None:
    ref = FileReference(bucket="o.n", file="1234", host="minio:9000")
    assert ref.to_json() == b'{"host":"minio:9000","bucket":"o.n","file":"1234"}'
    assert FileReference.parse(b'{"bucket":"o.n","file":"1234"}') == FileReference("o.n", "1234")
    for bad in (b"not json", b"[]", b'{"bucket":"b"}', b'{"bucket":1,"file":"f"}'):
        with pytest.raises(BadReference):
            FileReference.parse(bad)


def test_a_components_storage_comes_from_the_operators_variables_with_the_originals_bucket() -> None:
    assert component_settings({}, "Acme", "Orders") is None
    s = component_settings({"MC_HOST_algorun": "http://AK:se/cr+et@minio:9000"}, "Acme", "Orders")
    assert s is not None
    assert (s.endpoint_url, s.access_key, s.bucket) == ("http://minio:9000", "AK", "acme.orders")
    assert s.secret_key is not None and s.secret_key.get_secret_value() == "se/cr+et"
    env = {
        "AWS_ENDPOINT_URL": "http://s3:9000",
        "AWS_ACCESS_KEY_ID": "a",
        "ALGORUN_STORAGE_BUCKET": "bkt",
        "ALGORUN_STORAGE_REGION": "eu-west-1",
    }
    s = component_settings(env, "Acme", "Orders")
    assert s is not None and (s.bucket, s.region, s.endpoint_url) == ("bkt", "eu-west-1", "http://s3:9000")
    assert s.threshold == DEFAULT_THRESHOLD < KAFKA_MESSAGE_MAX_BYTES  # what is not offloaded fits the default limit


def test_the_claim_check_threshold_is_a_number_of_bytes() -> None:
    env = {"AWS_ENDPOINT_URL": "http://s3:9000", "ALGORUN_STORAGE_THRESHOLD": "2048"}
    s = component_settings(env, "Acme", "Orders")
    assert s is not None and s.threshold == 2048
    for bad in ("1MB", "-1", "1e6"):
        with pytest.raises(StorageConfigError, match=f"ALGORUN_STORAGE_THRESHOLD: not a number of bytes: '{bad}'"):
            component_settings({**env, "ALGORUN_STORAGE_THRESHOLD": bad}, "Acme", "Orders")
