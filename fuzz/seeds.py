#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/seeds/<target>/ (committed; rerun after a
format change). Each seed is a valid request or frame of the kind its target reads."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

V2 = [
    {"id": "r1", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                             "data": [[1.5, 1, 0, 3], [2, 0, 2, 1]]}]},
    {"inputs": [{"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [7, 1, 1, 2]}],
     "parameters": {"timeout": 1000, "binary_data_output": True},
     "outputs": [{"name": "probability", "parameters": {"binary_data": False}}]},
    {"inputs": [
        {"name": "income", "shape": [2], "datatype": "FP64", "data": [1.5, None]},
        {"name": "owner", "shape": [2, 1], "datatype": "BOOL", "data": [[True], [False]]},
        {"name": "term", "shape": [2], "datatype": "BYTES", "data": ["36", "a\"b"]},
        {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["n", "w"]}],
     "parameters": {"content_type": "pd"}},
    {"inputs": [
        {"data": [11, 12], "name": "applicant_id", "shape": [2], "datatype": "INT64"},
        {"name": "owner", "shape": [2], "datatype": "INT32", "data": [1, 0]},
        {"name": "term", "shape": [2], "datatype": "BYTES", "data": ["60", "36"]}]},
]

V1 = [
    {"instances": [{"income": 10, "owner": True, "term": "60", "region": "s"},
                   [20, 0, "36", 2], [30, 1, 1, "w"]]},
    {"instances": [{"applicant_id": 4, "owner": 1, "term": "36"},
                   {"applicant_id": 5, "owner": 0, "term": "60", "income": None}]},
]


def put_str(s):
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def fnv1a(b):
    h = 0xcbf29ce484222325
    for x in b:
        h ^= x
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def frame(kind, payload):
    body = bytes([1, kind]) + payload
    return struct.pack("<I", len(body)) + body


def monitor_stream():
    content = put_str("credit-risk") + struct.pack("<QH", 3, 2)
    content += put_str("income") + b"\x00"
    content += put_str("term") + b"\x01" + struct.pack("<I", 2) + put_str("36") + put_str("60")
    content += put_str("probability")
    sid = fnv1a(content)
    schema = frame(1, struct.pack("<Q", sid) + content)
    rows = 3
    values = struct.pack("<3f", 1.0, 2.5, float("nan")) + struct.pack("<3f", 0, 1, 5)
    scores = struct.pack("<3f", 0.1, 0.2, 0.3)
    payload = struct.pack("<Q", sid) + put_str("credit-risk") + struct.pack("<QBIH", 3, 2, rows, 2)
    return schema + frame(2, payload + values + scores)


def write(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


for i, req in enumerate(V2):
    body = json.dumps(req).encode()
    write("v2_json", f"seed-{i}", bytes([i & 1]) + body)
for i, req in enumerate(V1):
    write("v1_records", f"seed-{i}", bytes([i & 1]) + json.dumps(req).encode())

header = json.dumps({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                                  "parameters": {"binary_data_size": 16}}],
                     "outputs": [{"name": "p\"q", "parameters": {"binary_data": True}}]}).encode()
write("v2_binary", "seed-0", struct.pack("<H", len(header)) + header + struct.pack("<4f", 2.5, 1, 1, 3))
cols = json.dumps({"inputs": [
    {"name": "term", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": 12}},
    {"name": "income", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
    {"name": "owner", "shape": [2], "datatype": "BOOL", "parameters": {"binary_data_size": 2}},
    {"name": "region", "shape": [2], "datatype": "BYTES", "data": ["e", "s"]}]}).encode()
tensors = (struct.pack("<I", 2) + b"36" + struct.pack("<I", 2) + b"60"
           + struct.pack("<2d", 1.5, 2.0) + b"\x01\x00")
write("v2_binary", "seed-1", struct.pack("<H", len(cols) | 0x8000) + cols + tensors)
write("monitor_frames", "seed-0", monitor_stream())

# Tensor-signature model (fuzz_targets/tensors.rs): inputs age FP32 [-1,1], term INT64
# [-1,1], purpose BYTES [-1], x FP64 [-1,3]; first byte 0 = JSON, 1 = binary, 2 = records.
TENSOR_V2 = {"id": 7, "inputs": [
    {"name": "age", "shape": [2, 1], "datatype": "FP32", "data": [[31.5], [None]]},
    {"name": "term", "shape": [2], "datatype": "INT64", "data": [36, 60]},
    {"name": "purpose", "shape": [2], "datatype": "BYTES", "data": ["car", "h\u00e9"]},
    {"name": "x", "shape": [2, 3], "datatype": "FP64", "data": [1, 2.5, -3, 4, 5, 6e10]}],
    "outputs": [{"name": "p"}]}
write("tensors", "seed-0", b"\x00" + json.dumps(TENSOR_V2).encode())
bin_header = json.dumps({"inputs": [
    {"name": "age", "shape": [1, 1], "datatype": "FP32", "parameters": {"binary_data_size": 4}},
    {"name": "term", "shape": [1, 1], "datatype": "INT64", "parameters": {"binary_data_size": 8}},
    {"name": "purpose", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}},
    {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [0, 1, 2]}],
    "parameters": {"binary_data_output": True}}).encode()
bin_tail = struct.pack("<f", 40.0) + struct.pack("<q", 60) + struct.pack("<I", 3) + b"car"
write("tensors", "seed-1", b"\x01" + struct.pack("<H", len(bin_header)) + bin_header + bin_tail)
records = {"instances": [{"age": 30, "term": 36, "purpose": "car", "x": 1.0},
                         {"age": 41.5, "term": 60, "purpose": "home"}]}
write("tensors", "seed-2", b"\x02" + json.dumps(records).encode())
