"""Ultravox (AI voice agents) over its HTTP API, and the mapping from trunx's fields to it.

The calls used, as Ultravox documents them (https://docs.ultravox.ai/api-reference):
    header X-API-Key on every request
    GET    /api/calls?agentIds&fromDate -> {results: [Call], next}  (calls_list: the calls
                                        an agent's SIP INVITEs created since a moment)
    GET    /api/calls/{id}             -> Call {callId, created, joined, ended, endReason,
                                        agentId, metadata, ...}
    GET    /api/calls/{id}/messages    -> {results: [{role, text, medium, ...}], next, total}
                                        (cursor pagination: `next` is the next page's URL)
    POST   /api/agents                 {name, callTemplate: {...}} -> 201 Agent
                                        {agentId, name, created, callTemplate, statistics}
    GET    /api/agents/{id}, PATCH (same body, partial), DELETE -> 204
    GET    /api/agents?search=name     -> {results: [Agent], next}
    GET    /api/sip, PATCH /api/sip    {allowedCidrRanges, allowAllAgents} -> SipConfig
                                        {domain, allowedCidrRanges, allowAllAgents, ...}
    POST   /api/sip/registrations      {username, password, proxy} -> 201 SipRegistration
    GET    /api/sip/registrations      -> {results: [SipRegistration], next}
    errors: non-2xx, usually JSON {"detail": "..."} or {field: ["..."]}

The mapping between trunx's fields and these bodies (call templates, transcripts, the
`ai` result) is trunx/ultravox_mapping.py. Calls are not created over HTTP: trunx's
Asterisk sends an INVITE to the agent's SIP user and Ultravox creates the call from the
agent's call template (trunx/ultravox_sip.py says how; agi_server/ai/bridge.py does it).
A plain `systemPrompt` call goes through an agent trunx manages for that configuration
(ultravox_mapping.managed_agent_name, ai_template).

Errors are data, one family under trunx's error tree (trunx/errors.py); `remote_status`
is what Ultravox said, if it said anything (also in details, as remoteStatus):

    UltravoxError
    ├── UltravoxNotConfigured  NotConfigured    ultravox-not-configured
    ├── UltravoxUnavailable    Unavailable      ultravox-unreachable, ultravox-rate-limited
    ├── UltravoxTimeout        UpstreamTimeout  ultravox-timeout
    ├── UltravoxRejected       InvalidInput     ultravox-rejected (Ultravox refused our input)
    └── UltravoxFailed         UpstreamError    ultravox-unauthorized, ultravox-not-found,
                                                ultravox-bad-response, ultravox-error

The API key never appears in an error (it is only ever sent as a header).
"""
from __future__ import annotations

from urllib.parse import quote, urlsplit

import requests

from trunx.errors import (
    InvalidInput,
    NotConfigured,
    TrunxError,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)

SETTING = "ULTRAVOX_API_KEY"
_MESSAGE_MAX = 500



class UltravoxError(TrunxError):
    def __init__(self, code: str, message: str, *, remote_status: int | None = None,
                 details: dict | None = None):
        details = dict(details or {})
        if remote_status is not None:
            details["remoteStatus"] = remote_status
        super().__init__(code, message, details)
        self.remote_status = remote_status

    @property
    def not_found(self) -> bool:
        return self.remote_status == 404

    def summary(self) -> dict:
        """What GET /api/voice/agents/{id} says in `ultravoxError`."""
        out = {"code": self.code, "message": self.message}
        if self.remote_status is not None:
            out["remoteStatus"] = self.remote_status
        return out


class UltravoxNotConfigured(UltravoxError, NotConfigured):
    pass


class UltravoxUnavailable(UltravoxError, Unavailable):
    pass


class UltravoxTimeout(UltravoxError, UpstreamTimeout):
    pass


class UltravoxRejected(UltravoxError, InvalidInput):
    pass


class UltravoxFailed(UltravoxError, UpstreamError):
    pass


def not_configured() -> UltravoxError:
    return UltravoxNotConfigured("ultravox-not-configured",
                                 f"AI agents need Ultravox: set {SETTING} (the API key from the "
                                 "Ultravox console) and restart", details={"setting": SETTING})


class Ultravox:
    provider = "ultravox"

    def __init__(self, api_key: str, base_url: str = "https://api.ultravox.ai", *,
                 timeout: tuple[float, float] = (5.0, 20.0)):
        if not api_key:
            raise not_configured()
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout            # (connect, read) seconds
        self._session = requests.Session()

    @classmethod
    def from_config(cls, config) -> Ultravox:
        """The client for `config`; UltravoxError ultravox-not-configured without a key."""
        timeout = float(getattr(config, "ultravox_timeout", 20.0))
        return cls(config.ultravox_api_key, config.ultravox_base_url,
                   timeout=(min(5.0, timeout), timeout))

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Ultravox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:     # never the key
        return f"Ultravox({self.base_url!r})"

    # -- transport ----------------------------------------------------------------------
    def _request(self, method: str, path: str, *, json=None, params=None):
        url = path if path.startswith(("http://", "https://")) else self.base_url + path
        try:
            resp = self._session.request(method, url, json=json, params=params,
                                         headers={"X-API-Key": self._key,
                                                  "Accept": "application/json"},
                                         timeout=self.timeout)
        except requests.Timeout:
            raise UltravoxTimeout("ultravox-timeout",
                                  f"Ultravox did not answer within {self.timeout[1]:g} s",
                                  details={"timeout": self.timeout[1]}) from None
        except requests.RequestException as exc:
            raise UltravoxUnavailable("ultravox-unreachable",
                                      f"Ultravox could not be reached ({type(exc).__name__})",
                                      details={"base_url": self.base_url}) from None
        if resp.status_code == 204 or (200 <= resp.status_code < 300 and not resp.content):
            return None
        if not 200 <= resp.status_code < 300:
            raise self._error(resp)
        try:
            return resp.json()
        except ValueError:
            raise UltravoxFailed("ultravox-bad-response",
                                 "Ultravox sent a response that is not JSON",
                                 remote_status=resp.status_code) from None

    def _error(self, resp: requests.Response) -> UltravoxError:
        status = resp.status_code
        said = self._redact(_remote_message(resp))
        if status in (401, 403):
            return UltravoxFailed("ultravox-unauthorized",
                                  f"Ultravox refused the API key ({SETTING}): {said}",
                                  remote_status=status, details={"setting": SETTING})
        if status == 404:
            return UltravoxFailed("ultravox-not-found", f"Ultravox: {said}",
                                  remote_status=status)
        if status == 429:
            return UltravoxUnavailable("ultravox-rate-limited",
                                       f"Ultravox is rate limiting this account: {said}",
                                       remote_status=status,
                                       details={"retry_after": resp.headers.get("Retry-After")})
        if 400 <= status < 500:
            return UltravoxRejected("ultravox-rejected",
                                    f"Ultravox rejected the request: {said}",
                                    remote_status=status)
        return UltravoxFailed("ultravox-error", f"Ultravox failed ({status}): {said}",
                              remote_status=status)

    def _redact(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    # -- calls --------------------------------------------------------------------------
    def create_call(self, body: dict) -> dict:
        return self._request("POST", "/api/calls", json=body)

    def create_agent_call(self, agent_id: str, body: dict) -> dict:
        """POST /api/agents/{agent_id}/calls (StartAgentCallRequest: templateContext,
        metadata, medium, ...) -> the Call."""
        return self._request("POST", f"/api/agents/{_seg(agent_id)}/calls", json=body)

    def get_call(self, call_id: str) -> dict:
        return self._request("GET", f"/api/calls/{_seg(call_id)}")

    def messages(self, call_id: str, *, page_size: int = 200, max_pages: int = 50) -> list:
        """Every message of the call, following the `next` cursor links."""
        out: list = []
        page = self._request("GET", f"/api/calls/{_seg(call_id)}/messages",
                             params={"pageSize": page_size})
        for _ in range(max_pages):
            out.extend((page or {}).get("results") or [])
            nxt = (page or {}).get("next")
            if not nxt or not self._same_origin(nxt):
                break
            page = self._request("GET", nxt)
        return out

    def _same_origin(self, url: str) -> bool:
        # a `next` link is followed with our key on it only if it points back at Ultravox
        a, b = urlsplit(url), urlsplit(self.base_url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def list_calls(self, *, agent_id: str, from_date: str, page_size: int = 50) -> list:
        """The calls of one agent created at or after `from_date` (ISO 8601), first page."""
        page = self._request("GET", "/api/calls",
                             params={"agentIds": agent_id, "fromDate": from_date,
                                     "pageSize": page_size})
        return list((page or {}).get("results") or [])

    # -- SIP ------------------------------------------------------------------------------
    def get_sip(self) -> dict:
        return self._request("GET", "/api/sip")

    def update_sip(self, body: dict) -> dict:
        return self._request("PATCH", "/api/sip", json=body)

    def create_sip_registration(self, body: dict) -> dict:
        return self._request("POST", "/api/sip/registrations", json=body)

    def sip_registrations(self) -> list:
        page = self._request("GET", "/api/sip/registrations")
        return list((page or {}).get("results") or [])

    # -- agents -------------------------------------------------------------------------
    def find_agent(self, name: str) -> dict | None:
        """The agent named exactly `name`, if the account has one (search, then compare)."""
        page = self._request("GET", "/api/agents", params={"search": name, "pageSize": 100})
        return next((a for a in (page or {}).get("results") or [] if a.get("name") == name),
                    None)

    def create_agent(self, name: str, call_template: dict) -> dict:
        return self._request("POST", "/api/agents",
                             json={"name": name, "callTemplate": call_template})

    def get_agent(self, agent_id: str) -> dict:
        return self._request("GET", f"/api/agents/{_seg(agent_id)}")

    def update_agent(self, agent_id: str, *, name: str | None = None,
                     call_template: dict | None = None) -> dict:
        body: dict = {}
        if name is not None:
            body["name"] = name
        if call_template is not None:
            body["callTemplate"] = call_template
        return self._request("PATCH", f"/api/agents/{_seg(agent_id)}", json=body)

    def delete_agent(self, agent_id: str) -> None:
        self._request("DELETE", f"/api/agents/{_seg(agent_id)}")


def _seg(value: str) -> str:
    return quote(str(value), safe="")


def _remote_message(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        text = resp.text.strip()
        return (text[:_MESSAGE_MAX] or resp.reason or "no details")
    if isinstance(data, dict):
        if isinstance(data.get("detail"), str):
            text = data["detail"]
        elif isinstance(data.get("message"), str):
            text = data["message"]
        else:   # field errors: {"name": ["..."], "callTemplate": {"voice": ["..."]}}
            text = "; ".join(f"{k}: {_flat(v)}" for k, v in data.items())
    else:
        text = _flat(data)
    return text[:_MESSAGE_MAX] or "no details"


def _flat(value) -> str:
    if isinstance(value, list):
        return " ".join(_flat(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_flat(v)}" for k, v in value.items())
    return str(value)
