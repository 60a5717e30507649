"""ElevenLabs text-to-speech over its HTTP API (`engine: neural`).

The calls used, as ElevenLabs documents them:
    POST {base}/v1/text-to-speech/{voice_id}?output_format=mp3_44100_128
         header xi-api-key; JSON {text, model_id, voice_settings?} -> audio/mpeg bytes
    GET  {base}/v2/voices?search=NAME&page_size=100[&next_page_token=T]  header xi-api-key
         -> {"voices": [{"voice_id", "name" (may be null), ...}], "has_more",
             "next_page_token"}          (voices.search in ElevenLabs' official SDK:
             "search, filtering and pagination"; page_size at most 100)
    GET  {base}/v1/voices?show_legacy=true  -> {"voices": [...]}  (voices.get_all:
         "If set to true, legacy premade voices will be included"), asked only when the
         search finds no voice of that name, since legacy premade voices such as Rachel
         are left out of plain lists
    errors: non-2xx with JSON {"detail": {"status": "invalid_api_key", "message": "..."}}
            (422 validation errors carry a list under "detail")
"""
from __future__ import annotations

import re
import time
from urllib.parse import quote

import requests

from .errors import (
    BadMedia,
    MediaError,
    MediaNotConfigured,
    ProviderFailed,
    ProviderTimeout,
    ProviderUnavailable,
)
from .sniff import sniff

DEFAULT_MODEL = "eleven_multilingual_v2"
OUTPUT_FORMAT = "mp3_44100_128"
# Premade and cloned voice ids are 20 alphanumerics; anything else is taken as a name.
_ID_RE = re.compile(r"^[A-Za-z0-9]{20}$")
MAX_SEARCH_PAGES = 20   # 2,000 matching voices: a name search never needs more
_MODEL_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# voice_settings fields and their documented ranges (bool for the flag)
VOICE_SETTINGS = {"stability": (0.0, 1.0), "similarity_boost": (0.0, 1.0),
                  "style": (0.0, 1.0), "speed": (0.7, 1.2), "use_speaker_boost": bool}


def check_settings(settings: dict) -> dict:
    """{model_id?, voice_settings?} checked against the documented fields and ranges."""
    out = {}
    for name, value in settings.items():
        if name == "model_id" and isinstance(value, str) and _MODEL_RE.fullmatch(value):
            out[name] = value
        elif name == "voice_settings" and isinstance(value, dict):
            out[name] = {k: _check_voice_setting(k, v) for k, v in value.items()}
        else:
            raise BadMedia("invalid-settings", f"bad neural-engine setting {name!r}",
                           {"setting": name, "allowed": ["model_id", "voice_settings"]})
    return out


def _check_voice_setting(name, value):
    kind = VOICE_SETTINGS.get(name)
    if kind is bool and isinstance(value, bool):
        return value
    if isinstance(kind, tuple) and isinstance(value, (int, float)) and not isinstance(
            value, bool) and kind[0] <= value <= kind[1]:
        return value
    raise BadMedia("invalid-settings", f"bad voice_settings.{name}",
                   {"setting": f"voice_settings.{name}", "value": value,
                    "allowed": {k: "bool" if v is bool else list(v)
                                for k, v in VOICE_SETTINGS.items()}})


class ElevenLabs:
    provider = "elevenlabs"

    def __init__(self, api_key: str, base_url: str = "https://api.elevenlabs.io", *,
                 timeout: tuple[float, float] = (5.0, 60.0), voices_ttl: float = 600.0):
        if not api_key:
            raise MediaNotConfigured("provider-not-configured",
                                     "the neural engine needs ELEVENLABS_API_KEY to be set")
        self.api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout            # (connect, read) seconds
        self.voices_ttl = voices_ttl
        self._names: dict[str, tuple[float, str]] = {}   # lower-case name -> (expires, id)

    def _request(self, method: str, path: str, **kw) -> requests.Response:
        url = self.base_url + path
        try:
            resp = requests.request(method, url, headers={"xi-api-key": self.api_key},
                                    timeout=self.timeout, **kw)
        except requests.Timeout as exc:
            raise ProviderTimeout(
                "tts-provider-timeout", "ElevenLabs did not answer in time",
                {"provider": self.provider, "timeout": list(self.timeout)}) from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                "tts-provider-unavailable", "ElevenLabs could not be reached",
                {"provider": self.provider, "reason": type(exc).__name__}) from exc
        if not 200 <= resp.status_code < 300:
            raise _provider_error(resp)
        return resp

    def _named(self, voices, name: str) -> str | None:
        for v in voices or []:
            # a voice may have no name (null): it can never be the one asked for
            if isinstance(v, dict) and isinstance(v.get("name"), str) \
                    and v["name"].strip().lower() == name and v.get("voice_id"):
                return v["voice_id"]
        return None

    def _search(self, name: str) -> str | None:
        """GET /v2/voices?search=NAME, following next_page_token (bounded)."""
        params = {"search": name, "page_size": 100}
        for _ in range(MAX_SEARCH_PAGES):
            page = self._json("GET", "/v2/voices", params=params)
            found = self._named(page.get("voices"), name)
            if found or not page.get("has_more") or not page.get("next_page_token"):
                return found
            params = {**params, "next_page_token": page["next_page_token"]}
        return None

    def _legacy(self, name: str) -> str | None:
        page = self._json("GET", "/v1/voices", params={"show_legacy": "true"})
        return self._named(page.get("voices"), name)

    def _json(self, method: str, path: str, **kw) -> dict:
        try:
            data = self._request(method, path, **kw).json()
            if not isinstance(data, dict):
                raise TypeError
            return data
        except (ValueError, TypeError) as exc:
            raise ProviderFailed("tts-provider-error", "ElevenLabs sent a voice list we can't read",
                                 {"provider": self.provider}) from exc

    def resolve_voice(self, voice: str) -> str:
        """A voice id as given, or the id of the voice with that name (any case), looked up
        once per `voices_ttl`."""
        if _ID_RE.fullmatch(voice):
            return voice
        name = voice.strip().lower()
        now = time.monotonic()
        cached = self._names.get(name)
        if cached and cached[0] > now:
            return cached[1]
        found = self._search(name) or self._legacy(name)
        if found is None:
            raise BadMedia("unknown-voice", f"ElevenLabs has no voice named {voice!r}",
                           {"voice": voice})
        self._names[name] = (now + self.voices_ttl, found)  # one assignment: thread-safe
        return found

    def synthesize(self, text: str, voice: str, settings: dict | None = None) -> bytes:
        """mp3 bytes (44.1 kHz, 128 kb/s) of `text` spoken by `voice` (id or name)."""
        settings = check_settings(settings or {})
        voice_id = self.resolve_voice(voice)
        body = {"text": text, "model_id": settings.get("model_id", DEFAULT_MODEL)}
        if "voice_settings" in settings:
            body["voice_settings"] = settings["voice_settings"]
        resp = self._request("POST", f"/v1/text-to-speech/{quote(voice_id, safe='')}",
                             params={"output_format": OUTPUT_FORMAT}, json=body)
        if sniff(resp.content[:64]) != "mp3":
            raise ProviderFailed("tts-provider-error", "ElevenLabs answered without mp3 audio",
                                 {"provider": self.provider,
                                  "content_type": resp.headers.get("Content-Type", "")})
        return resp.content


def _provider_error(resp: requests.Response) -> MediaError:
    detail, provider_status, message = None, None, resp.reason or "error"
    try:
        detail = resp.json().get("detail")
    except (ValueError, AttributeError):
        pass
    if isinstance(detail, dict):
        provider_status = detail.get("status")
        message = str(detail.get("message") or message)
    elif isinstance(detail, str):
        message = detail
    elif isinstance(detail, list) and detail:
        message = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d)
                            for d in detail)[:500]
    return ProviderFailed("tts-provider-error",
                          f"ElevenLabs answered {resp.status_code}: {message}",
                          {"provider": "elevenlabs", "http_status": resp.status_code,
                           "provider_status": provider_status, "provider_message": message})
