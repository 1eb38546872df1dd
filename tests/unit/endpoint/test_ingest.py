"""Routes, content types, endpointParams and message building: pure request logic."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from algorun.api.configs import EndpointConfig, EndpointPathConfig, Identity
from algorun.api.enums import MessageDataType
from algorun.bus import contract
from algorun.endpoint.errors import EndpointError
from algorun.endpoint.ingest import (
    Router,
    build_message,
    check_content_type,
    check_trace_id,
    encode_params,
    media_type,
    split_ingest_path,
)


def _path(content_type: str | None = None, kind: MessageDataType = MessageDataType.EMBEDDED) -> EndpointPathConfig:
    return EndpointPathConfig(name="p", topic="t.p", content_type=content_type, message_data_type=kind)


def _router() -> Router:
    ident = Identity(deployment_owner="o", deployment_name="n", pipeline_owner="o", pipeline_name="n")
    return Router(EndpointConfig(identity=ident, paths=[_path("application/json")]))


def test_a_plain_post_runs_with_a_new_trace_id() -> None:
    route = _router().route("o", "n", "p", None, upload=False)
    assert route.run is True
    assert len(route.trace_id) == 32
    assert route.caller_trace_id is False


def test_a_trace_id_post_runs_and_upload_stages() -> None:
    router = _router()
    assert router.route("o", "n", "p", "abc", upload=False).run is True
    staged = router.route("o", "n", "p", "abc", upload=True)
    assert (staged.run, staged.trace_id) == (False, "abc")


@pytest.mark.parametrize(("owner", "name", "path"), [("o", "n", "x"), ("O", "n", "p"), ("o", "other", "p")])
def test_unknown_owner_name_or_path_is_404_listing_the_paths(owner: str, name: str, path: str) -> None:
    with pytest.raises(EndpointError) as err:
        _router().path(owner, name, path)
    assert err.value.status == 404
    assert '"p"' in err.value.message


@pytest.mark.parametrize("bad", ["", " ", "a b", "-x", "x" * 129, "a/b", "é", "a\nb", "a\n"])
def test_bad_trace_ids_are_400(bad: str) -> None:
    with pytest.raises(EndpointError) as err:
        check_trace_id(bad)
    assert err.value.status == 400


@given(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z"))
def test_well_formed_trace_ids_pass(trace: str) -> None:
    assert check_trace_id(trace) == trace


@pytest.mark.parametrize(
    ("declared", "sent", "ok"),
    [
        ("application/json", "application/json", True),
        ("application/json", "Application/JSON; charset=utf-8", True),
        ("application/json", "text/plain", False),
        ("text/any", "text/csv", True),
        ("text/any", "application/json", False),
        ("text/*", "text/plain", True),
        ("*/*", "image/png", True),
        ("application/json, text/csv", "text/csv", True),
        (None, "anything/at-all", True),
    ],
)
def test_content_type_check(declared: str | None, sent: str, ok: bool) -> None:
    if ok:
        assert check_content_type(_path(declared), sent) == sent
    else:
        with pytest.raises(EndpointError) as err:
            check_content_type(_path(declared), sent)
        assert err.value.status == 415


def test_a_missing_content_type_takes_the_paths_single_concrete_type() -> None:
    assert check_content_type(_path("application/json"), None) == "application/json"
    with pytest.raises(EndpointError):
        check_content_type(_path("text/any"), None)
    assert check_content_type(_path(None), None) is None


def test_media_type_strips_parameters() -> None:
    assert media_type(" Text/Plain ; charset=utf-8") == "text/plain"
    assert media_type(None) == ""


def test_endpoint_params_are_sorted_by_key_keeping_value_order() -> None:
    assert encode_params([("z", "1"), ("a", "2"), ("a", "1"), ("m", "x y&")]) == "a=2&a=1&m=x+y%26&z=1"
    assert encode_params([]) is None
    assert encode_params({"b": "1", "a": "2"}) == "a=2&b=1"


def test_message_is_keyed_by_trace_id_with_the_contract_headers() -> None:
    route = _router().route("o", "n", "p", "tr-1", upload=True)
    msg = build_message(route, b"x", content_type="application/json", endpoint_params="a=1", file_name="f.json")
    assert msg.key == b"tr-1"
    assert msg.topic == "t.p"
    assert contract.get(msg.headers, "traceID") == "tr-1"
    assert contract.get(msg.headers, "run") == "false"
    assert contract.get(msg.headers, "contentType") == "application/json"
    assert contract.get(msg.headers, "endpointParams") == "a=1"
    assert contract.get(msg.headers, "fileName") == "f.json"
    assert contract.get(msg.headers, "messageDataType") == "Embedded"


def test_only_a_stored_payload_is_marked_file_reference_whatever_the_path_declares() -> None:
    ident = Identity(deployment_owner="o", deployment_name="n", pipeline_owner="o", pipeline_name="n")
    config = EndpointConfig(identity=ident, paths=[_path(None, MessageDataType.FILE_REFERENCE)])
    route = Router(config).route("o", "n", "p", None, upload=False)
    inline = build_message(route, b"{}", content_type=None, endpoint_params=None)
    assert contract.get(inline.headers, "messageDataType") == "Embedded"
    ref = b'{"bucket":"b","file":"f"}'
    stored = build_message(
        route, ref, content_type=None, endpoint_params=None, data_type=contract.MessageDataType.FILE_REFERENCE
    )
    assert contract.get(stored.headers, "messageDataType") == "FileReference"
    assert stored.value == ref


@pytest.mark.parametrize(
    ("url_path", "parts"),
    [
        ("/o/n/p", ("o", "n", "p", None, False)),
        ("/o/n/p/t1", ("o", "n", "p", "t1", False)),
        ("/o/n/p/t1/upload", ("o", "n", "p", "t1", True)),
        ("/o/n/p/upload", ("o", "n", "p", "upload", True)),  # as the route patterns had it
        ("/o/n/p/a%2Fb", ("o", "n", "p", "a/b", False)),  # an encoded slash stays inside its segment
        ("/o/n/p/a%25b", ("o", "n", "p", "a%b", False)),
        ("/o/n", None),
        ("/o/n/p/", None),
        ("//n/p", None),
        ("/o/n/p/t1/other", None),
        ("/o/n/p/t1/upload/x", None),
        ("o/n/p", None),
    ],
)
def test_ingestion_urls_split_into_owner_name_path_trace_and_upload(
    url_path: str, parts: tuple[str, str, str, str | None, bool] | None
) -> None:
    assert split_ingest_path(url_path) == parts
