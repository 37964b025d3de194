"""GetMetricHistories over the JSON API of a real `modelog up`: transcoded from the proto like every
RPC (no route of its own), in the OpenAPI document, guarded by the same table over HTTP."""

from __future__ import annotations

from tests.integration.gatewayfix import Platform, platform
from tests.integration.test_gateway_jsonapi import API, call, ok, violations

__all__ = ["platform"]

TRACKING = "modelog.tracking.v1.Tracking"


def test_one_json_call_answers_what_one_call_per_history_does(platform: Platform) -> None:
    runs = []
    for i in range(3):
        run = ok(
            platform, f"{TRACKING}/StartRun", {"experimentName": "json-histories", "createExperiment": True}
        )
        run_id = run["run"]["info"]["runId"]
        n = 50 * (i + 1)
        keys = ["loss"] * n + ["acc"] * (i % 2)
        batch = {"runId": run_id, "keys": keys, "values": [float(j % 7) for j in range(len(keys))]}
        ok(platform, f"{TRACKING}/LogMetricsBatch", {**batch, "steps": [str(j) for j in range(len(keys))]})
        runs.append(run_id)
    reply = ok(
        platform, f"{TRACKING}/GetMetricHistories", {"runIds": runs, "keys": ["loss", "acc"], "maxPoints": 40}
    )
    got = reply["histories"]
    assert [(h["runId"], h["key"]) for h in got] == [(r, k) for r in runs for k in ("loss", "acc")]
    for h in got:
        single = ok(
            platform, f"{TRACKING}/GetMetricHistory", {"runId": h["runId"], "key": h["key"], "maxPoints": 40}
        )
        assert {k: v for k, v in h.items() if k != "runId"} == single, h
    assert got[0]["downsampled"] is True and got[0]["totalPoints"] == "50"
    assert got[1].get("steps", []) == [] and int(got[1].get("totalPoints", 0)) == 0  # run 0: no acc

    before = platform.heads()
    status, answer, _ = call(platform, f"{TRACKING}/GetMetricHistories", {"runIds": runs, "keys": []})
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT" and "keys" in violations(answer)
    assert platform.heads() == before

    viewer = platform.new_token("histories-viewer", "viewer")
    status, answer, _ = call(
        platform, f"{TRACKING}/GetMetricHistories", {"runIds": runs, "keys": ["loss"]}, token=viewer
    )
    assert status == 200 and len(answer["histories"]) == 3, answer
    status, answer, _ = call(
        platform, f"{TRACKING}/GetMetricHistories", {"runIds": runs, "keys": ["loss"]}, token=None
    )
    assert status == 401, answer


def test_the_openapi_document_describes_the_batched_call(platform: Platform) -> None:
    status, doc, _ = call(platform, "openapi.json", token=None, http="GET")
    assert status == 200
    post = doc["paths"][f"{API}/{TRACKING}/GetMetricHistories"]["post"]
    ref = post["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("GetMetricHistoriesResponse")
    schemas = doc["components"]["schemas"]
    item = schemas["modelog.tracking.v1.MetricHistory"]["properties"]
    assert {"runId", "key", "steps", "values", "timestampsMs", "totalPoints", "downsampled"} <= set(item)
    request = schemas["modelog.tracking.v1.GetMetricHistoriesRequest"]["properties"]
    assert request["runIds"]["type"] == "array" and request["keys"]["type"] == "array"
