"""Drives vane-server with Triton's own Python client (`tritonclient.http`), the way a Triton
user would: health, server and model metadata, model configuration, statistics, the
repository index, and inference with JSON and binary tensors, compressed requests and the
async API. Exits non-zero on the first mismatch; prints the scores as JSON on success, for
tests/it/triton_client.rs to compare with the server's plain JSON answer.

    python3 triton_client.py HOST:PORT ADMIN_TOKEN ROWS_JSON
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

MODEL = "credit-risk"


def expect_error(status, call):
    try:
        call()
    except InferenceServerException as e:
        assert str(e.status()) == str(status), (status, e.status(), e.message())
        assert e.message(), "an error without a message"
        return
    raise AssertionError(f"expected HTTP {status}")


def main():
    url, token, rows = sys.argv[1], sys.argv[2], np.array(json.loads(sys.argv[3]), np.float32)
    auth = {"Authorization": f"Bearer {token}"}
    c = httpclient.InferenceServerClient(url)

    assert c.is_server_live() and c.is_server_ready()
    meta = c.get_server_metadata()
    for ext in ("binary_tensor_data", "model_configuration", "statistics"):
        assert ext in meta["extensions"], meta
    assert c.is_model_ready(MODEL) and c.is_model_ready(MODEL, "1")
    assert not c.is_model_ready("no-such-model")

    md = c.get_model_metadata(MODEL)
    iname, oname = md["inputs"][0]["name"], md["outputs"][0]["name"]
    assert md["inputs"][0]["shape"] == [-1, rows.shape[1]], md

    cfg = c.get_model_config(MODEL)
    assert cfg["name"] == MODEL and cfg["max_batch_size"] > 0, cfg
    assert cfg["input"] == [
        {
            "name": iname,
            "data_type": "TYPE_FP32",
            "dims": [rows.shape[1]],
            "format": "FORMAT_NONE",
            "is_shape_tensor": False,
            "allow_ragged_batch": False,
            "optional": False,
        }
    ], cfg
    assert cfg["output"][0]["name"] == oname and cfg["output"][0]["dims"] == [1], cfg
    assert c.get_model_config(MODEL, "1")["name"] == MODEL
    expect_error(404, lambda: c.get_model_config("no-such-model"))

    index = c.get_model_repository_index(headers=auth)
    assert {"name": MODEL, "version": "1", "state": "READY"}.items() <= next(
        m for m in index if m["name"] == MODEL
    ).items(), index
    expect_error(401, c.get_model_repository_index)

    scores = None
    calls = 0
    for binary_in in (True, False):
        for binary_out in (True, False):
            for compression in (None, "gzip", "deflate"):
                inp = httpclient.InferInput(iname, list(rows.shape), "FP32")
                inp.set_data_from_numpy(rows, binary_data=binary_in)
                out = httpclient.InferRequestedOutput(oname, binary_data=binary_out)
                r = c.infer(
                    MODEL,
                    [inp],
                    outputs=[out],
                    request_id=f"req-{calls}",
                    request_compression_algorithm=compression,
                    response_compression_algorithm=compression,
                )
                calls += 1
                got = r.as_numpy(oname)
                assert got.shape == (rows.shape[0], 1), got.shape
                assert r.get_response()["id"] == f"req-{calls - 1}"
                if scores is None:
                    scores = got
                assert np.array_equal(got, scores), (binary_in, binary_out, compression)

    inp = httpclient.InferInput(iname, list(rows.shape), "FP32")
    inp.set_data_from_numpy(rows)
    r = c.async_infer(MODEL, [inp], model_version="1").get_result()
    calls += 1
    assert np.array_equal(r.as_numpy(oname), scores)

    bad = httpclient.InferInput(iname, [1, rows.shape[1] + 1], "FP32")
    bad.set_data_from_numpy(np.zeros((1, rows.shape[1] + 1), np.float32))
    expect_error(400, lambda: c.infer(MODEL, [bad]))
    expect_error(404, lambda: c.infer(MODEL, [inp], model_version="99"))

    stats = c.get_inference_statistics(MODEL)["model_stats"]
    assert [s["version"] for s in stats] == ["1"], stats
    s = stats[0]
    assert s["inference_stats"]["success"]["count"] == calls, s
    assert s["inference_stats"]["fail"]["count"] >= 1, s
    assert s["inference_count"] == calls * rows.shape[0], s
    assert 1 <= s["execution_count"] <= calls, s
    assert sum(b["compute_infer"]["count"] for b in s["batch_stats"]) == s["execution_count"], s
    assert s["last_inference"] > 0 and s["inference_stats"]["compute_infer"]["ns"] > 0, s
    every = c.get_inference_statistics()["model_stats"]
    assert MODEL in {m["name"] for m in every}, every

    print(json.dumps({"scores": scores.ravel().tolist(), "calls": calls}))


if __name__ == "__main__":
    main()
