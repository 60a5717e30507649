"""A local HTTP server speaking the part of the ElevenLabs API that trunx uses, as
ElevenLabs' official Python SDK (elevenlabs-python, generated from their API definition)
has it: voices.get_all, voices.search, text_to_speech.convert; the Voice type's `name` is
optional (null) and `is_legacy` marks legacy premade voices.

    GET  /v1/voices[?show_legacy=true]   -> {"voices": [Voice]}: legacy premade voices
         (Rachel) only with show_legacy=true; past V1_LIMIT voices it answers 422 (the
         plain list does not serve large workspaces; v2 search does)
    GET  /v2/voices?search&page_size&next_page_token -> {"voices", "has_more",
         "total_count", "next_page_token"}: `search` matches name, description, labels
         and category; page_size at most 100 (default 10); no legacy voices
    POST /v1/text-to-speech/{voice_id}   -> audio/mpeg: the request text really spoken
         (espeak-ng, then sox to 44.1 kHz mp3, as output_format=mp3_44100_128 asks)
    a missing or wrong xi-api-key        -> 401 {"detail": {"status": "invalid_api_key", ...}}
    an unknown voice id                  -> 404 {"detail": {"status": "voice_not_found", ...}}
    a body without text                  -> 422 {"detail": [{"loc", "msg", "type"}]}

Every request is recorded in `.requests`, so tests can count what reached the provider.
`delay` makes the next responses slow (for client timeouts).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes.http_fake import HTTPFake, read_json, send_json

VOICES = [
    {"voice_id": "EXAVITQu4vr4xnSDxMaL", "name": "Sarah", "category": "premade"},
    {"voice_id": "21m00Tcm4TlvDq8ikWAM", "name": "Rachel", "category": "premade",
     "is_legacy": True},
    {"voice_id": "custom-voice-7", "name": "Front Desk", "category": "cloned"},
    {"voice_id": "unnamed-voice-1", "name": None, "category": "generated"},
]
V1_LIMIT = 500


def speak_mp3(text: str) -> bytes:
    """Real mp3 bytes of `text`: espeak-ng to WAV, then sox (libsox-fmt-mp3) to mp3."""
    with tempfile.TemporaryDirectory() as d:
        wav, mp3 = os.path.join(d, "s.wav"), os.path.join(d, "s.mp3")
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", wav, "--stdin"],
                       input=text.encode(), check=True, capture_output=True)
        subprocess.run(["sox", wav, "-r", "44100", "-C", "128", mp3], check=True,
                       capture_output=True)
        with open(mp3, "rb") as f:
            return f.read()


class FakeElevenLabs(HTTPFake):
    def __init__(self, api_key: str = "test-key", voices: list[dict] | None = None):
        super().__init__()
        self.api_key = api_key
        self.voices = voices if voices is not None else VOICES

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        body = read_json(h)
        record = {"method": method, "path": url.path, "query": parse_qs(url.query),
                  "headers": dict(h.headers), "json": body}
        with self._lock:
            self.requests.append(record)
        if self.delay:
            time.sleep(self.delay)
        if h.headers.get("xi-api-key") != self.api_key:
            return send_json(h, 401, {"detail": {"status": "invalid_api_key",
                                                  "message": "Invalid API key"}})
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if method == "GET" and url.path == "/v1/voices":
            if len(self.voices) > V1_LIMIT:
                return send_json(h, 422, {"detail": {
                    "status": "too_many_voices", "message": "use GET /v2/voices"}})
            legacy = query.get("show_legacy") == "true"
            return send_json(h, 200, {"voices": [v for v in self.voices
                                                 if legacy or not v.get("is_legacy")]})
        if method == "GET" and url.path == "/v2/voices":
            return send_json(h, 200, self._search(query))
        prefix = "/v1/text-to-speech/"
        if method == "POST" and url.path.startswith(prefix):
            voice_id = unquote(url.path[len(prefix):])
            if voice_id not in {v["voice_id"] for v in self.voices}:
                return send_json(h, 404, {"detail": {
                    "status": "voice_not_found",
                    "message": f"A voice with the voice_id {voice_id} was not found."}})
            if not isinstance(body, dict) or not isinstance(body.get("text"), str):
                return send_json(h, 422, {"detail": [{
                    "loc": ["body", "text"], "msg": "Field required", "type": "missing"}]})
            audio = speak_mp3(body["text"])
            h.send_response(200)
            h.send_header("Content-Type", "audio/mpeg")
            h.send_header("Content-Length", str(len(audio)))
            h.end_headers()
            h.wfile.write(audio)
            return None
        return send_json(h, 404, {"detail": "Not Found"})

    def _search(self, query: dict) -> dict:
        size = min(100, int(query.get("page_size") or 10))
        start = int(query.get("next_page_token") or 0)
        term = (query.get("search") or "").lower()

        def matches(v):
            text = " ".join(str(x) for x in (v.get("name"), v.get("description"),
                                             v.get("category"), *(v.get("labels") or {}).values())
                            if x)
            return term in text.lower()

        found = [v for v in self.voices if not v.get("is_legacy") and matches(v)]
        page = found[start:start + size]
        more = start + size < len(found)
        return {"voices": page, "has_more": more, "total_count": len(found),
                "next_page_token": str(start + size) if more else None}
