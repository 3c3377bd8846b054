"""The prediction core, the Kinesis handler logic, the HTTP routes and hot swapping."""

from __future__ import annotations

import base64
import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_service import handler as handler_module
from lambda_service.bundle import ONNX_FILE, BundleError, Manifest
from lambda_service.model_provider import ModelProvider
from lambda_service.service import PredictionService
from lambda_service.streams import Entry, KinesisSink
from lambda_service.web import create_app
from studperf_assets.lib import data, models
from studperf_assets.lib.bundle_builder import write_bundle
from studperf_assets.local.lambda_runtime import LocalLambdaContext
from studperf_assets.resources.model_store import LocalModelStore
from studperf_assets_tests.kinesis_fakes import (
    STUDENT,
    FlakyKinesis,
    MemoryKinesis,
    RejectingKinesis,
    event_id,
    kinesis_record,
    kpl_aggregate,
    kpl_frame,
    reference_messages,
    student_message,
)

PRED, ERR = "predictions", "errors"
CONTEXT = LocalLambdaContext()  # Lambda always passes one; Powertools reads it


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(trained_bundle: tuple[Path, Manifest], tmp_path: Path) -> LocalModelStore:
    folder, manifest = trained_bundle
    store = LocalModelStore(root=str(tmp_path / "store"))
    store.publish(folder, manifest.version)
    store.promote(manifest.version, {}, replacing=None)
    return store


def _service(
    store: LocalModelStore, tmp_path: Path, client: Any = None, **kwargs: Any
) -> tuple[PredictionService, Any]:
    client = client or MemoryKinesis()
    provider = ModelProvider(store.root_uri, tmp_path / "cache", **kwargs)
    sink = KinesisSink(client, sleep=lambda _s: None)
    return PredictionService(provider, sink, PRED, ERR), client


def _account(outcome: Any, records: int) -> None:
    """Every user record in is accounted for out; a plain Kinesis record is one."""
    assert outcome.records == records == outcome.predictions + outcome.errors + outcome.failed
    assert len(outcome.failures) <= outcome.failed
    if not outcome.aggregated:
        assert outcome.failed == len(outcome.failures)


def test_a_batch_is_scored_in_one_call(store: LocalModelStore, tmp_path: Path) -> None:
    service, client = _service(store, tmp_path)
    calls: list[int] = []
    predictor = service.provider.predictor
    original = predictor.predict_matrix

    def counting(rows: Any) -> Any:
        calls.append(len(rows))
        return original(rows)

    predictor.predict_matrix = counting  # type: ignore[method-assign]
    records = [kinesis_record(student_message(2000 + i, Absences=i), 100 + i) for i in range(30)]
    outcome = service.handle_kinesis(records)
    _account(outcome, 30)
    assert calls == [30] and outcome.predictions == 30
    out = client.bodies(PRED)
    assert [o["idempotency_key"] for o in out] == [event_id(100 + i) for i in range(30)]
    first = out[0]
    assert (
        first["model_version"] == predictor.version
        and first["model_name"] == "studperf-grade-class"
    )
    assert first["grade"] == "ABCDF"[first["grade_class"]]
    assert abs(sum(first["probabilities"].values()) - 1) < 1e-4
    assert first["student"]["Absences"] == 0 and "Age" not in first["student"]
    assert first["predicted_at"].endswith("Z") and first["student_id"] == 2000
    # more absences, worse grades: the model is really being applied
    grades = [o["grade_class"] for o in out]
    assert grades[-1] > grades[0] and grades == sorted(grades)


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (b"\xff\xfe not utf-8", None, "not UTF-8"),
        (b"{not json", None, "not JSON"),
        (b"[1, 2]", None, "JSON list, not an object"),
        (json.dumps({"student": STUDENT}).encode(), "student_id", "missing"),
        (json.dumps({"student_id": 7}).encode(), "student", "missing"),
        (student_message(7, Absences=None), "Absences", "missing value"),
        (student_message(7, StudyTimeWeekly="lots"), "StudyTimeWeekly", "not a number"),
        (
            b'{"student_id": 7, "student": {"StudyTimeWeekly": NaN}}',
            "ParentalEducation",
            "missing field",
        ),
        (
            student_message(7, StudyTimeWeekly=float("nan")),
            "StudyTimeWeekly",
            "not a finite number",
        ),
        (student_message(7, Absences=40), "Absences", "outside [0, 29]"),
    ],
)
def test_bad_records_become_error_records(
    store: LocalModelStore, tmp_path: Path, payload: bytes, field: str | None, reason: str
) -> None:
    service, client = _service(store, tmp_path)
    good = kinesis_record(student_message(1), 1)
    outcome = service.handle_kinesis([good, kinesis_record(payload, 2)])
    _account(outcome, 2)
    assert outcome.predictions == 1 and outcome.errors == 1 and not outcome.failures
    (error,) = client.bodies(ERR)
    assert error["field"] == field and reason in error["reason"]
    assert error["idempotency_key"] == event_id(2)
    assert _original_payload(error) == payload


def _original_payload(error: dict[str, Any]) -> bytes:
    if error["payload_encoding"] == "base64":
        return base64.b64decode(error["payload"])
    return str(error["payload"]).encode()


def test_data_that_is_not_base64(store: LocalModelStore, tmp_path: Path) -> None:
    service, client = _service(store, tmp_path)
    record = kinesis_record(b"", 5)
    record["kinesis"]["data"] = "%%% not base64 %%%"
    outcome = service.handle_kinesis([record])
    _account(outcome, 1)
    assert client.bodies(ERR)[0]["reason"] == "data is not base64"
    assert client.bodies(ERR)[0]["payload"] == "%%% not base64 %%%"


def test_put_records_is_chunked_at_500(store: LocalModelStore, tmp_path: Path) -> None:
    service, client = _service(store, tmp_path)
    records = [kinesis_record(student_message(i), i) for i in range(1200)]
    outcome = service.handle_kinesis(records)
    _account(outcome, 1200)
    assert [n for stream, n in client.calls if stream == PRED] == [500, 500, 200]


def test_throttled_entries_are_retried_alone(store: LocalModelStore, tmp_path: Path) -> None:
    flaky = FlakyKinesis(MemoryKinesis(), failing_calls=2)
    service, _ = _service(store, tmp_path, client=flaky)
    outcome = service.handle_kinesis([kinesis_record(student_message(i), i) for i in range(8)])
    _account(outcome, 8)
    assert outcome.predictions == 8 and not outcome.failures
    assert [n for s, n in flaky.calls if s == PRED] == [8, 4, 2]  # only the failed ones again
    assert len(flaky.inner.streams[PRED]) == 8


def test_failures_that_outlast_the_retries_are_reported(
    store: LocalModelStore, tmp_path: Path
) -> None:
    flaky = FlakyKinesis(MemoryKinesis(), failing_calls=99, streams={PRED})
    service, _ = _service(store, tmp_path, client=flaky)
    records = [kinesis_record(student_message(i), 10 + i) for i in range(6)]
    records.append(kinesis_record(b"junk", 99))
    outcome = service.handle_kinesis(records)
    _account(outcome, 7)
    assert outcome.errors == 1
    assert len(outcome.failures) + outcome.predictions == 6 and outcome.failures
    response = outcome.response()
    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == set(outcome.failures)


def test_unreachable_output_stream_reports_every_record(
    store: LocalModelStore, tmp_path: Path
) -> None:
    flaky = FlakyKinesis(MemoryKinesis(), failing_calls=99, raise_instead=True)
    service, _ = _service(store, tmp_path, client=flaky)
    outcome = service.handle_kinesis(
        [kinesis_record(student_message(1), 1), kinesis_record(b"x", 2)]
    )
    assert outcome.failures == ("1", "2") and outcome.predictions == outcome.errors == 0


def test_sink_groups_stay_under_the_byte_limit() -> None:
    client = MemoryKinesis()
    big = [Entry(b"x" * (1024 * 1024 - 10), "k", str(i)) for i in range(7)]
    assert KinesisSink(client).put("s", big) == []
    assert [n for _, n in client.calls] == [5, 2]  # 5 MiB a call


# Anything a producer could put in a record: raw bytes, arbitrary JSON, deep nesting,
# integers far beyond 64 bits, and student messages whose IDs and features are arbitrary.
ANY_SCALAR = (
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.text(max_size=300)
)
ANY_PAYLOAD = st.one_of(
    st.binary(max_size=200),
    st.recursive(
        ANY_SCALAR,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=12,
    ).map(lambda value: json.dumps(value).encode()),
    st.integers(1, 20_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.fixed_dictionaries(
        {
            "student_id": ANY_SCALAR,
            "student": st.dictionaries(
                st.sampled_from(sorted(STUDENT)), ANY_SCALAR | st.integers(-5, 40)
            ),
        },
        optional={"request_id": ANY_SCALAR},
    ).map(lambda value: json.dumps(value).encode()),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    payloads=st.lists(ANY_PAYLOAD, min_size=1, max_size=20),
    partition_keys=st.lists(st.text(max_size=300), min_size=20, max_size=20),
)
def test_fuzz_the_handler_never_raises_and_accounts_for_everything(
    store: LocalModelStore, tmp_path: Path, payloads: list[bytes], partition_keys: list[str]
) -> None:
    """Property: whatever the records carry, handle_kinesis returns, every output call is
    one Kinesis accepts (the fake validates like Kinesis), and predictions + errors +
    failures == records."""
    service, client = _service(store, tmp_path)
    records = [kinesis_record(p, i, partition_keys[i]) for i, p in enumerate(payloads)]
    outcome = service.handle_kinesis(records)
    _account(outcome, len(payloads))
    assert not outcome.failures  # the sink never had a call rejected
    written = {b["idempotency_key"] for b in client.bodies(PRED) + client.bodies(ERR)}
    assert written == {event_id(i) for i in range(len(payloads))}


def _second_bundle(store: LocalModelStore, tmp_path: Path) -> str:
    raw = data.parse_raw_csv(data.bundled_dataset_path().read_bytes())
    train = data.reference_split(data.select_features(raw))["train"]
    X = data.feature_matrix(train)
    scaler = models.make_scaler().fit(X)
    model = models.fit_candidate(
        models.CandidateSpec("logistic_regression", {"C": 1.0, "class_weight": None}),
        scaler.transform(X), train["GradeClass"].to_numpy(), train["GPA"].to_numpy(),
    )  # fmt: skip
    folder = tmp_path / "second"
    manifest = write_bundle(
        models.make_pipeline_for(scaler, model), folder, model_family="logistic_regression",
        params={}, metrics={}, training_data_sha256="0" * 64, mlflow_run_id=None,
    )  # fmt: skip
    store.publish(folder, manifest.version)
    return manifest.version


def test_hot_swap_after_promotion(store: LocalModelStore, tmp_path: Path) -> None:
    clock = Clock()
    service, client = _service(store, tmp_path, refresh_seconds=30, clock=clock)
    first = service.provider.predictor.version
    second = _second_bundle(store, tmp_path)
    store.promote(second, {}, replacing=first)
    service.handle_kinesis([kinesis_record(student_message(1), 1)])
    clock.now = 29.0
    service.handle_kinesis([kinesis_record(student_message(2), 2)])
    clock.now = 31.0
    service.handle_kinesis([kinesis_record(student_message(3), 3)])
    versions = [b["model_version"] for b in client.bodies(PRED)]
    assert versions == [first, first, second]


def test_failed_refresh_keeps_serving(store: LocalModelStore, tmp_path: Path) -> None:
    clock = Clock()
    provider = ModelProvider(store.root_uri, tmp_path / "cache", refresh_seconds=1, clock=clock)
    version = provider.predictor.version
    second = _second_bundle(store, tmp_path)
    store.promote(second, {}, replacing=version)
    (Path(store.bundle_uri(second)) / ONNX_FILE).write_bytes(b"corrupt")
    clock.now = 5
    assert provider.predictor.version == version
    assert not provider.refresh()


def test_concurrent_requests_swap_once(
    store: LocalModelStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``studperf serve`` answers from a thread pool: requests that find a refresh due at
    the same moment must not fetch the same bundle into one cache side by side."""
    cache = tmp_path / "cache"
    provider = ModelProvider(store.root_uri, cache, refresh_seconds=0)
    second = _second_bundle(store, tmp_path)
    store.promote(second, {}, replacing=provider.predictor.version)
    start = threading.Barrier(8)
    swapped: list[bool] = []

    def request() -> None:
        start.wait()
        swapped.append(provider.refresh())

    threads = [threading.Thread(target=request) for _ in range(8)]
    with caplog.at_level(logging.ERROR, logger="studperf.model"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert swapped.count(True) == 1 and len(swapped) == 8
    assert "failed" not in caplog.text
    assert provider.predictor.version == second
    assert sorted(p.name for p in cache.iterdir()) == [second]


def test_pinned_bundle_is_not_swapped(
    store: LocalModelStore, trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    clock = Clock()
    folder, manifest = trained_bundle
    pinned = ModelProvider(str(folder), tmp_path / "pinned", refresh_seconds=0, clock=clock)
    following = ModelProvider(store.root_uri, tmp_path / "following", refresh_seconds=0)
    assert following.predictor.version == pinned.predictor.version == manifest.version
    second = _second_bundle(store, tmp_path)
    store.promote(second, {}, replacing=manifest.version)
    clock.now = 100
    assert following.refresh() and following.predictor.version == second  # the pointer moved
    assert not pinned.refresh()  # ...and a pinned bundle stays what it was
    assert pinned.predictor.version == manifest.version


def test_missing_or_corrupt_bundle_at_cold_start_names_the_uri(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    with pytest.raises(BundleError, match=str(tmp_path / "nothing")):
        ModelProvider(str(tmp_path / "nothing"), tmp_path / "cache")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(trained_bundle[0], corrupt)
    (corrupt / ONNX_FILE).write_bytes(b"oops")
    with pytest.raises(BundleError, match=f"{corrupt}: {ONNX_FILE} is corrupt"):
        ModelProvider(str(corrupt), tmp_path / "cache")


def test_lambda_handler_reports_an_unloadable_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    environ = {"MODEL_BUNDLE_URI": str(tmp_path / "gone"), "MODEL_CACHE_DIR": str(tmp_path)}
    cold = handler_module._ColdStart(environ)
    monkeypatch.setattr(handler_module, "COLD_START", cold)
    with pytest.raises(RuntimeError, match=f"model unavailable: {tmp_path / 'gone'}"):
        handler_module.lambda_handler({"Records": []}, CONTEXT)


def _http(path: str, method: str = "GET", body: Any = None) -> dict[str, Any]:
    """An API Gateway HTTP API (v2) / Function URL event."""
    return {
        "rawPath": path,
        "requestContext": {"http": {"method": method}},
        "body": None if body is None else json.dumps(body),
    }


def test_lambda_http_routes(
    store: LocalModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = _service(store, tmp_path)
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    ok = handler_module.lambda_handler(_http("/predict", "POST", STUDENT), CONTEXT)
    assert ok["statusCode"] == 200 and json.loads(ok["body"])["grade"] in "ABCDF"
    many_event = _http("/predict", "POST", [STUDENT, STUDENT])
    many = json.loads(handler_module.lambda_handler(many_event, CONTEXT)["body"])
    assert len(many["predictions"]) == 2
    bad = handler_module.lambda_handler(
        _http("/predict", "POST", [STUDENT, {**STUDENT, "Absences": -1}]),
        CONTEXT,
    )
    assert bad["statusCode"] == 422
    assert json.loads(bad["body"])["errors"] == [
        {"index": 1, "field": "Absences", "reason": "-1 outside [0, 29]"}
    ]
    v1 = {"httpMethod": "GET", "path": "/health"}
    assert json.loads(handler_module.lambda_handler(v1, CONTEXT)["body"])["status"] == "ok"
    assert handler_module.lambda_handler(_http("/model"), CONTEXT)["statusCode"] == 200
    assert handler_module.lambda_handler(_http("/nope"), CONTEXT)["statusCode"] == 404
    not_json = _http("/predict", "POST")
    not_json["body"] = "{"
    assert handler_module.lambda_handler(not_json, CONTEXT)["statusCode"] == 422


# Full events as AWS delivers them (the shapes of AWS's documentation and Powertools' test
# events): the stage is where each kind of event puts it.
def _rest_event(method: str, path: str, stage: str, body: str | None) -> dict[str, Any]:
    """API Gateway REST API (payload 1.0): ``path`` without the stage, requestContext's with."""
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {"content-type": "application/json", "Host": "abc123.execute-api.eu-west-1"},
        "multiValueHeaders": {"content-type": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.strip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "extendedRequestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "httpMethod": method,
            "identity": {"sourceIp": "203.0.113.7", "userAgent": "curl/8.5.0"},
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "requestTime": "09/Apr/2015:12:34:56 +0000",
            "requestTimeEpoch": 1428582896000,
            "resourceId": "1234567",
            "resourcePath": "/{proxy+}",
            "stage": stage,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _http_api_event(method: str, raw_path: str, stage: str, body: str | None) -> dict[str, Any]:
    """API Gateway HTTP API (payload 2.0): ``rawPath`` starts with a named stage."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.7",
                "userAgent": "curl/8.5.0",
            },
            "requestId": "JKJaXmPLvHcESHA=",
            "routeKey": "$default",
            "stage": stage,
            "time": "10/Mar/2020:05:16:23 +0000",
            "timeEpoch": 1583817383220,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _function_url_event(method: str, raw_path: str, body: str | None) -> dict[str, Any]:
    """A Lambda Function URL (payload 2.0, stage ``$default``; this project's Terraform)."""
    event = _http_api_event(method, raw_path, "$default", body)
    event["requestContext"].update(
        apiId="dlvngo4q2ijnstetuk2rrcojgu0bhjtv",
        domainName="dlvngo4q2ijnstetuk2rrcojgu0bhjtv.lambda-url.eu-west-1.on.aws",
        domainPrefix="dlvngo4q2ijnstetuk2rrcojgu0bhjtv",
        authorizer={"iam": {"accountId": "123456789012", "userId": "AIDACKCEVSQ6C2EXAMPLE"}},
    )
    return event


STUDENT_BODY = json.dumps(STUDENT)
ROUTED = [
    # HTTP API, a named stage: the field fault (404 before)
    (_http_api_event("POST", "/prod/predict", "prod", STUDENT_BODY), 200, "grade"),
    (_http_api_event("GET", "/prod/health", "prod", None), 200, "status"),
    (_http_api_event("GET", "/prod/model/", "prod", None), 200, "class_labels"),
    (_http_api_event("GET", "/dev-2/health", "dev-2", None), 200, "status"),
    # a stage named like a route: only the leading segment is the stage
    (_http_api_event("POST", "/predict/predict", "predict", STUDENT_BODY), 200, "grade"),
    (_http_api_event("GET", "/health/health", "health", None), 200, "status"),
    # HTTP API, $default stage: no stage in the path
    (_http_api_event("POST", "/predict", "$default", STUDENT_BODY), 200, "grade"),
    (_http_api_event("GET", "/health", "$default", None), 200, "status"),
    # REST API: path already without the stage
    (_rest_event("POST", "/predict", "prod", STUDENT_BODY), 200, "grade"),
    (_rest_event("GET", "/health", "prod", None), 200, "status"),
    (_rest_event("GET", "/model", "predict", None), 200, "class_labels"),
    # Function URL
    (_function_url_event("POST", "/predict", STUDENT_BODY), 200, "grade"),
    (_function_url_event("GET", "/health", None), 200, "status"),
    # a named stage that is not in the path is not cut out of it
    (_http_api_event("GET", "/health", "prod", None), 200, "status"),
]
NOT_ROUTED = [
    # only the stage: the API's root, which has no route
    (_http_api_event("GET", "/prod", "prod", None), "GET /"),
    (_http_api_event("GET", "/prod/", "prod", None), "GET /"),
    (_http_api_event("POST", "/predict", "predict", STUDENT_BODY), "POST /"),
    # a stage is a whole segment: /production is not /prod followed by more
    (_http_api_event("GET", "/production/health", "prod", None), "GET /production/health"),
    # $default is never a prefix, nor is the stage in a REST API's path
    (_http_api_event("GET", "/$default/health", "$default", None), "GET /$default/health"),
    (_rest_event("GET", "/prod/health", "prod", None), "GET /prod/health"),
    (_function_url_event("GET", "/prod/health", None), "GET /prod/health"),
    (_http_api_event("DELETE", "/prod/predict", "prod", None), "DELETE /predict"),
]


def _where(event: dict[str, Any]) -> str:
    context = event["requestContext"]
    return f"{event.get('rawPath') or event.get('path')} (stage {context['stage']})"


def test_http_events_are_routed_on_the_path_without_their_stage(
    store: LocalModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service, _ = _service(store, tmp_path)
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    for event, status, key in ROUTED:
        answer = handler_module.lambda_handler(event, CONTEXT)
        assert answer["statusCode"] == status, f"{_where(event)}: {answer['body']}"
        assert key in json.loads(answer["body"]), _where(event)
    for event, route in NOT_ROUTED:
        answer = handler_module.lambda_handler(event, CONTEXT)
        assert answer["statusCode"] == 404, _where(event)
        assert json.loads(answer["body"]) == {"error": f"no route for {route}"}, _where(event)


def test_web_service(store: LocalModelStore, tmp_path: Path) -> None:
    service, _ = _service(store, tmp_path)
    client = TestClient(create_app(service))
    assert client.get("/health").json()["model_version"] == service.provider.predictor.version
    assert client.get("/model").json()["class_labels"] == ["A", "B", "C", "D", "F"]
    single = client.post("/predict", json={**STUDENT, "Gender": 1})
    assert single.status_code == 200 and set(single.json()["probabilities"]) == set("ABCDF")
    listed = client.post("/predict", json={"students": [STUDENT] * 3})
    assert len(listed.json()["predictions"]) == 3
    bad = client.post("/predict", json={**STUDENT, "StudyTimeWeekly": "a lot"})
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "StudyTimeWeekly"
    assert client.post("/predict", json=[]).status_code == 422
    assert (
        client.post(
            "/predict", content=b"{", headers={"content-type": "application/json"}
        ).status_code
        == 422
    )
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert body["oneOf"][0]["properties"]["Absences"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 29,
    }


@pytest.mark.parametrize("text", ["1_0", "\u0661", "Infinity", "0x4"])
def test_every_route_reads_a_number_as_training_does(
    store: LocalModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    """One parser (issue 19, C.12): a string float() reads but no CSV writer writes ('1_0'
    is 10 to float(), '\u0661' is 1) is refused by the stream, the Lambda's HTTP route and
    the web service alike; a number with spaces around is read everywhere."""
    service, client = _service(store, tmp_path)
    outcome = service.handle_kinesis(
        [
            kinesis_record(student_message(1, Absences=text), 1),
            kinesis_record(student_message(2, Absences=" 4 "), 2),
        ]
    )
    assert outcome.predictions == 1 and outcome.errors == 1
    (error,) = client.bodies(ERR)
    assert error["field"] == "Absences" and error["reason"] == f"not a number: {text!r}"
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    expected = [{"index": 0, "field": "Absences", "reason": f"not a number: {text!r}"}]
    bad = {**STUDENT, "Absences": text}
    answer = handler_module.lambda_handler(_http("/predict", "POST", [bad, STUDENT]), CONTEXT)
    assert answer["statusCode"] == 422 and json.loads(answer["body"])["errors"] == expected
    web = TestClient(create_app(service))
    answer = web.post("/predict", json={"students": [bad, STUDENT]})
    assert answer.status_code == 422 and answer.json()["errors"] == expected
    assert web.post("/predict", json={**STUDENT, "Absences": " 4 "}).status_code == 200


def test_lambda_http_bad_base64_and_oversize_bodies(
    store: LocalModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_service.service import MAX_REQUEST_BYTES

    service, _ = _service(store, tmp_path)
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    padded = _http("/predict", "POST")
    padded.update(body="eyJhIjox", isBase64Encoded=True)  # '{"a":1' cut short: bad padding
    answer = handler_module.lambda_handler({**padded, "body": "eyJhIjoxfQ="}, CONTEXT)
    assert answer["statusCode"] == 422 and "not valid base64" in answer["body"]
    encoded = _http("/predict", "POST")
    encoded.update(
        body=base64.b64encode(json.dumps(STUDENT).encode()).decode(), isBase64Encoded=True
    )
    assert handler_module.lambda_handler(encoded, CONTEXT)["statusCode"] == 200
    huge = _http("/predict", "POST")
    huge["body"] = json.dumps([STUDENT] * (MAX_REQUEST_BYTES // 150))
    answer = handler_module.lambda_handler(huge, CONTEXT)
    assert answer["statusCode"] == 413 and "limit" in answer["body"]


def test_web_service_limits_the_body_and_keeps_health_answering(
    store: LocalModelStore, tmp_path: Path
) -> None:
    import asyncio
    import threading

    import httpx

    from lambda_service.service import MAX_REQUEST_BYTES

    service, _ = _service(store, tmp_path)
    app = create_app(service)
    client = TestClient(app)
    too_big = b"[" + b" " * MAX_REQUEST_BYTES + b"]"
    assert client.post("/predict", content=too_big).status_code == 413

    def chunks() -> Any:  # no Content-Length: the limit holds while streaming
        for _ in range(MAX_REQUEST_BYTES // 65536 + 2):
            yield b" " * 65536

    assert client.post("/predict", content=chunks()).status_code == 413
    students = json.dumps([STUDENT] * 25_000).encode()
    assert len(students) < MAX_REQUEST_BYTES
    finished: list[str] = []
    scoring = threading.Event()
    score = service.predict_body

    def predict_body(body: bytes) -> Any:
        scoring.set()
        return score(body)

    service.predict_body = predict_body  # type: ignore[method-assign]

    async def race() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://studperf") as http:

            async def predict() -> None:
                response = await http.post("/predict", content=students)
                assert response.status_code == 200 and len(response.json()["predictions"]) == 25_000
                finished.append("predict")

            async def health() -> None:
                while not scoring.is_set():  # the large request is being scored now
                    await asyncio.sleep(0.005)
                assert (await http.get("/health")).status_code == 200
                finished.append("health")

            await asyncio.gather(predict(), health())

    asyncio.run(race())
    assert finished == ["health", "predict"]  # scoring ran off the event loop


POISON = [
    (
        student_message(7, Absences=-12345).replace(b"-12345", b"1" + b"0" * 400),
        "Absences",
        "far outside",
    ),
    (b'{"student_id": 7, "student": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "nested"),
    (b'{"student_id": 7' + b"0" * 300 + b', "student": {}}', "student_id", "about 302 digits"),
    (json.dumps({"student_id": "x" * 300, "student": STUDENT}).encode(), "student_id", "1-64"),
    (json.dumps({"student_id": "", "student": STUDENT}).encode(), "student_id", "1-64"),
    (b'{"student_id": "\\ud800", "student": {}}', "student_id", "must be"),
    (json.dumps({"student_id": 2566.5, "student": STUDENT}).encode(), "student_id", "2566.5"),
    (json.dumps({"student_id": -1, "student": STUDENT}).encode(), "student_id", "must be"),
    (
        json.dumps({"student_id": 1, "request_id": "../x", "student": STUDENT}).encode(),
        "request_id",
        "must be",
    ),
]


@pytest.mark.parametrize(("payload", "field", "reason"), POISON)
def test_a_poison_record_is_an_error_record_and_the_batch_goes_on(
    store: LocalModelStore, tmp_path: Path, payload: bytes, field: str | None, reason: str
) -> None:
    service, client = _service(store, tmp_path)
    good = [kinesis_record(student_message(100 + i), i) for i in range(49)]
    outcome = service.handle_kinesis([*good, kinesis_record(payload, 49, "k" * 256)])
    _account(outcome, 50)
    assert outcome.predictions == 49 and outcome.errors == 1 and not outcome.failures
    (error,) = client.bodies(ERR)
    assert error["field"] == field and reason in error["reason"], error["reason"]


def test_integral_float_ids_from_pandas_producers_are_integers(
    store: LocalModelStore, tmp_path: Path
) -> None:
    service, client = _service(store, tmp_path)
    message = json.dumps({"student_id": 2566.0, "student": STUDENT}).encode()
    outcome = service.handle_kinesis([kinesis_record(message, 1)])
    assert outcome.predictions == 1
    (prediction,) = client.bodies(PRED)
    assert prediction["student_id"] == 2566 and isinstance(prediction["student_id"], int)


@pytest.mark.parametrize(
    "envelope",
    [
        {},
        {"kinesis": None},
        {"kinesis": {"sequenceNumber": "5"}},
        {"kinesis": {"data": "e30="}},
        {"kinesis": {"data": 5, "sequenceNumber": "6", "partitionKey": "\ud800"}},
        "not even a record",
    ],
)
def test_records_missing_their_parts_are_accounted_for(
    store: LocalModelStore, tmp_path: Path, envelope: Any
) -> None:
    service, client = _service(store, tmp_path)
    outcome = service.handle_kinesis([kinesis_record(student_message(1), 1), envelope])
    _account(outcome, 2)
    assert outcome.predictions == 1 and outcome.errors == 1 and not outcome.failures
    (error,) = client.bodies(ERR)
    assert error["reason"]


# ---- KPL aggregated records ----------------------------------------------------------


def _count_onnx_calls(service: PredictionService) -> list[int]:
    calls: list[int] = []
    predictor = service.provider.predictor
    original = predictor.predict_matrix

    def counting(rows: Any) -> Any:
        calls.append(len(rows))
        return original(rows)

    predictor.predict_matrix = counting  # type: ignore[method-assign]
    return calls


def test_a_kpl_aggregate_of_three_students_is_three_predictions(
    store: LocalModelStore, tmp_path: Path
) -> None:
    """Field fault: the aggregate became one error record, "payload is not UTF-8 text"."""
    service, client = _service(store, tmp_path)
    blob = kpl_aggregate([(f"s{i}", student_message(500 + i, Absences=3 * i)) for i in range(3)])
    outcome = service.handle_kinesis([kinesis_record(blob, 7, "s0")])
    _account(outcome, 3)
    assert outcome.predictions == 3 and outcome.errors == 0 and outcome.aggregated == 1
    out = client.bodies(PRED)
    assert [p["student_id"] for p in out] == [500, 501, 502]
    keys = [f"{event_id(7)}:{sub}" for sub in range(3)]
    assert [p["idempotency_key"] for p in out] == keys  # deduplicable after a redelivery
    assert [p["request_id"] for p in out] == keys  # as a plain record's is its eventID
    assert [p["student"]["Absences"] for p in out] == [0, 3, 6]


def test_plain_and_aggregated_records_are_scored_together(
    store: LocalModelStore, tmp_path: Path
) -> None:
    service, client = _service(store, tmp_path)
    calls = _count_onnx_calls(service)
    first = kpl_aggregate(
        [
            ("a", student_message(10)),
            ("b", student_message(11, Absences=99)),
            ("c", b"\xff not json"),
            (
                "a",
                json.dumps({"student_id": 12, "request_id": "r-12", "student": STUDENT}).encode(),
            ),
        ]
    )
    second = kpl_aggregate([("d", student_message(20)), ("d", student_message(21))])
    records = [
        kinesis_record(student_message(1), 1),
        kinesis_record(first, 2, "a"),
        kinesis_record(b"{not json", 3),
        kinesis_record(second, 4, "d"),
        kinesis_record(student_message(5), 5),
    ]
    outcome = service.handle_kinesis(records)
    _account(outcome, 3 + 4 + 2)
    assert outcome.predictions == 6 and outcome.errors == 3 and outcome.aggregated == 2
    assert calls == [6]  # still one ONNX call per batch
    predictions = client.bodies(PRED)
    assert [p["student_id"] for p in predictions] == [1, 10, 12, 20, 21, 5]  # input order
    assert predictions[2]["request_id"] == "r-12"
    assert predictions[2]["idempotency_key"] == f"{event_id(2)}:3"
    errors = {e["idempotency_key"]: e for e in client.bodies(ERR)}
    assert set(errors) == {f"{event_id(2)}:1", f"{event_id(2)}:2", event_id(3)}
    out_of_range = errors[f"{event_id(2)}:1"]
    assert out_of_range["field"] == "Absences" and out_of_range["partition_key"] == "b"
    assert json.loads(out_of_range["payload"])["student_id"] == 11  # the user record, not all
    not_text = errors[f"{event_id(2)}:2"]
    assert not_text["reason"] == "payload is not UTF-8 text" and not_text["partition_key"] == "c"
    assert base64.b64decode(not_text["payload"]) == b"\xff not json"


def _corrupt(kind: str) -> tuple[bytes, bytes]:
    """An aggregate of students 600-602 whose second user record is broken, and that
    record's own protobuf bytes."""
    message = reference_messages().AggregatedRecord(partition_key_table=["a"])
    for i in range(3):
        message.records.add(partition_key_index=0, data=student_message(600 + i))
    entry = message.records[1]
    if kind == "key index":
        entry.partition_key_index = 5
    elif kind == "hash key index":
        entry.explicit_hash_key_index = 0
    elif kind == "no data":
        entry.ClearField("data")
    raw = entry.SerializePartialToString()
    body = message.SerializePartialToString()
    if kind == "broken entry":  # as long as it was, but ending in a tag with no value
        shorter = type(entry)(partition_key_index=0, data=entry.data[:-1])
        broken = shorter.SerializeToString() + b"\x08"
        assert len(broken) == len(raw)
        return kpl_frame(body.replace(raw, broken)), broken
    return kpl_frame(body), raw


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("key index", "KPL user record 1: partition_key_index 5 is outside its table of 1 keys"),
        ("hash key index", "KPL user record 1: explicit_hash_key_index 0 is outside its table"),
        ("no data", "KPL user record 1 has no data"),
        ("broken entry", "KPL user record 1 is not a valid protobuf"),
    ],
)
def test_a_corrupt_user_record_is_its_own_error(
    store: LocalModelStore, tmp_path: Path, kind: str, reason: str
) -> None:
    """Its neighbours are scored: aws-kinesis-agg would drop every user record after it."""
    service, client = _service(store, tmp_path)
    blob, entry = _corrupt(kind)
    outcome = service.handle_kinesis([kinesis_record(blob, 8)])
    _account(outcome, 3)
    assert outcome.predictions == 2 and outcome.errors == 1
    assert [p["student_id"] for p in client.bodies(PRED)] == [600, 602]
    (error,) = client.bodies(ERR)
    assert reason in error["reason"] and error["idempotency_key"] == f"{event_id(8)}:1"
    assert _original_payload(error) == entry  # the broken record's own bytes, not all of them


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "KPL aggregate holds no user records"),
        (b"\x1a\x40\x08\x00", "KPL aggregate is not a valid protobuf: a length of 64"),
        # the batch's limit is 50,000 user records: the plain record before it takes one
        (b"\x1a\x00" * 60_000, "KPL aggregate of more than 49999 user records, the most"),
    ],
)
def test_an_aggregate_that_cannot_be_split_is_one_error(
    store: LocalModelStore, tmp_path: Path, body: bytes, reason: str
) -> None:
    service, client = _service(store, tmp_path)
    blob = kpl_frame(body)
    outcome = service.handle_kinesis(
        [kinesis_record(student_message(1), 1), kinesis_record(blob, 2)]
    )
    _account(outcome, 2)
    assert outcome.predictions == 1 and outcome.errors == 1 and outcome.aggregated == 1
    (error,) = client.bodies(ERR)
    assert error["reason"].startswith(reason) and error["idempotency_key"] == event_id(2)
    kept = _original_payload(error)  # the aggregate's bytes, cut as any large payload is
    assert kept and blob.startswith(kept) and error["payload_truncated"] == (len(kept) < len(blob))


def test_an_aggregate_with_a_wrong_md5_is_a_plain_record(
    store: LocalModelStore, tmp_path: Path
) -> None:
    """As the KCL and aws-kinesis-agg treat it: the bytes as they are, one error record."""
    service, client = _service(store, tmp_path)
    blob = kpl_aggregate([("a", student_message(1)), ("b", student_message(2))])
    broken = blob[:-1] + bytes([blob[-1] ^ 0xFF])
    outcome = service.handle_kinesis([kinesis_record(broken, 3)])
    _account(outcome, 1)
    assert outcome.errors == 1 and outcome.aggregated == 0
    (error,) = client.bodies(ERR)
    assert error["reason"] == "payload is not UTF-8 text"
    assert base64.b64decode(error["payload"]) == broken


def test_the_user_record_limit_holds_for_the_whole_batch(
    store: LocalModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lambda_service import service as service_module

    monkeypatch.setattr(service_module, "MAX_USER_RECORDS", 6)
    service, client = _service(store, tmp_path)
    three = [(str(i), student_message(i)) for i in range(3)]
    records = [
        kinesis_record(student_message(9), 1),
        kinesis_record(kpl_aggregate(three), 2),  # 4 so far
        kinesis_record(kpl_aggregate(three), 3),  # 7 would be over 6: one error for it
        kinesis_record(student_message(9), 4),
    ]
    outcome = service.handle_kinesis(records)
    _account(outcome, 1 + 3 + 1 + 1)
    assert outcome.predictions == 5 and outcome.errors == 1
    (error,) = client.bodies(ERR)
    assert error["reason"].startswith("KPL aggregate of more than 2 user records")
    assert error["idempotency_key"] == event_id(3)
    # plain records are not held back by the limit; an aggregate after them has no room
    records = [kinesis_record(kpl_aggregate(three + three), 1), kinesis_record(b"x", 2)]
    outcome = service.handle_kinesis([*records, kinesis_record(kpl_aggregate(three), 3)])
    _account(outcome, 6 + 1 + 1)
    assert outcome.predictions == 6 and outcome.errors == 2
    assert client.bodies(ERR)[-1]["reason"].startswith("KPL aggregate of more than 0 user records")


def test_a_failed_write_of_one_user_record_retries_its_aggregate(
    store: LocalModelStore, tmp_path: Path
) -> None:
    """Lambda retries Kinesis records: the item identifier is the aggregate's sequence number
    (not a user record's), and the whole aggregate counts as failed."""

    def rejects(entry: dict[str, Any]) -> bool:
        return bool(json.loads(entry["Data"]).get("student_id") == 601)

    service, client = _service(store, tmp_path, client=RejectingKinesis(MemoryKinesis(), rejects))
    aggregate = kpl_aggregate([(str(i), student_message(600 + i)) for i in range(3)])
    records = [
        kinesis_record(student_message(1), 41),
        kinesis_record(aggregate, 42),
        kinesis_record(b"junk", 43),
    ]
    outcome = service.handle_kinesis(records)
    _account(outcome, 5)
    assert outcome.failures == ("42",) and outcome.failed == 3
    assert outcome.predictions == 1 and outcome.errors == 1
    assert outcome.response() == {"batchItemFailures": [{"itemIdentifier": "42"}]}
    written = [p["idempotency_key"] for p in client.inner.bodies(PRED)]
    # the two that went out go again on the retry, with the same keys: downstream deduplicates
    assert written == [event_id(41), f"{event_id(42)}:0", f"{event_id(42)}:2"]


def _aggregate_of(payloads: list[bytes]) -> bytes:
    return kpl_aggregate([(str(i), p) for i, p in enumerate(payloads)])


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.one_of(
            ANY_PAYLOAD.map(lambda p: (p, None)),
            st.lists(ANY_PAYLOAD, min_size=1, max_size=6).map(
                lambda ps: (_aggregate_of(ps), len(ps))
            ),
            st.binary(max_size=60).map(lambda b: (kpl_frame(b), 0)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_fuzz_aggregates_account_for_every_user_record(
    store: LocalModelStore, tmp_path: Path, batch: list[tuple[bytes, int | None]]
) -> None:
    """Property: plain records (None), aggregates of anything (their count of user records),
    and any bytes framed as an aggregate (0): the handler returns, Kinesis accepts every
    output call, and every user record is written once under its own key (an aggregate that
    cannot be split, under its eventID)."""
    service, client = _service(store, tmp_path)
    outcome = service.handle_kinesis([kinesis_record(p, i) for i, (p, _) in enumerate(batch)])
    written = [b["idempotency_key"] for b in client.bodies(PRED) + client.bodies(ERR)]
    _account(outcome, len(written))
    assert not outcome.failures and len(set(written)) == len(written)
    assert outcome.aggregated == sum(n is not None for _, n in batch)
    for i, (_, user_records) in enumerate(batch):
        mine = {k for k in written if k == event_id(i) or k.startswith(f"{event_id(i)}:")}
        if user_records is None:
            assert mine == {event_id(i)}
        elif user_records:
            assert mine == {f"{event_id(i)}:{sub}" for sub in range(user_records)}
        else:
            parts = {f"{event_id(i)}:{sub}" for sub in range(len(mine))}
            assert mine == {event_id(i)} or mine == parts


def test_a_kinesis_invocation_logs_json_and_emits_emf_metrics(
    store: LocalModelStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from lambda_service.observability import logger

    service, _ = _service(store, tmp_path)
    monkeypatch.setattr(handler_module.COLD_START, "service", service)
    records = [kinesis_record(student_message(i), i) for i in range(9)]
    records.append(kinesis_record(b"{not json", 9))
    records.append(kinesis_record(kpl_aggregate([("a", student_message(10))] * 2), 10))
    capsys.readouterr()
    handler_module.lambda_handler({"Records": records}, CONTEXT)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    (emf,) = [line for line in lines if "_aws" in line]
    (definition,) = emf["_aws"]["CloudWatchMetrics"]
    assert definition["Namespace"] == "studperf"
    assert definition["Dimensions"] == [["service"], ["service", "ModelVersion"]]
    names = {m["Name"] for m in definition["Metrics"]}
    assert names == {
        "Records",
        "AggregatedRecords",
        "Predictions",
        "ErrorRecords",
        "BatchItemFailures",
        "ScoringFailures",
        "ScoringMilliseconds",
    }
    version = service.provider.predictor.version
    values = [
        emf[k]
        for k in (
            "Records",
            "AggregatedRecords",
            "Predictions",
            "ErrorRecords",
            "BatchItemFailures",
        )
    ]
    assert emf["ModelVersion"] == version and values == [[12.0], [1.0], [11.0], [1.0], [0.0]]
    (record,) = [r for r in caplog.records if r.getMessage() == "batch scored"]
    log = json.loads(logger.registered_formatter.format(record))  # the line Lambda logs
    assert log["level"] == "INFO" and log["model_version"] == version and log["Records"] == 12
    assert log["failed_records"] == 0


def test_the_serving_runtime_writes_nothing_outside_its_folders(
    trained_bundle: tuple[Path, Manifest], tmp_path: Path
) -> None:
    """onnxruntime would keep a telemetry device id and database under ~/.cache."""
    import os
    import subprocess
    import sys

    folder, _ = trained_bundle
    home = tmp_path / "home"
    home.mkdir()
    script = (
        "import sys; from pathlib import Path\n"
        "from lambda_service.predictor import Predictor\n"
        "predictor = Predictor.from_folder(Path(sys.argv[1]))\n"
        "print(predictor.version)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORT_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    result = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
