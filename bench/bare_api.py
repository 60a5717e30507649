"""The API baseline: a bare Flask app that answers GET /ivr/<id> and POST /ivr with the
JSON trunx's API gave for the same IVR, held in memory (no auth, no database, no Redis).

gunicorn 'bench.bare_api:app', with BENCH_BARE_BODY naming a file that holds that JSON.
"""
from __future__ import annotations

import json
import os

from flask import Flask, request

with open(os.environ["BENCH_BARE_BODY"]) as f:
    BODY = json.load(f)

app = Flask(__name__)
app.json.sort_keys = False


@app.get("/ivr/<ivr_id>")
def get(ivr_id: str):
    return BODY


@app.post("/ivr")
def create():
    data = request.get_json()
    return {**BODY, "id": data.get("id", BODY["id"])}, 201
