"""An AI call's inline tool URLs go under the address policy again when handed to Ultravox
(agi_server/ai/bridge.check_tool_urls), as webhooks are at send time."""
import pytest

from agi_server.ai import bridge
from trunx import config as trunx_config


def call_with(url: str) -> dict:
    return {"ai": {"systemPrompt": "hi", "tools": [
        {"modelToolName": "lookup", "http": {"baseUrlPattern": url, "httpMethod": "GET"}}]}}


def test_a_private_tool_url_is_refused_unless_the_operator_allows_it():
    strict = trunx_config.load(env={})
    with pytest.raises(bridge.BridgeError) as refused:
        bridge.check_tool_urls(call_with("http://127.0.0.1:9/tool"), strict)
    assert refused.value.code == "url-not-allowed" and "tools[0]" in refused.value.message
    with pytest.raises(bridge.BridgeError):
        bridge.check_tool_urls(call_with("http://[::ffff:10.0.0.1]/tool"), strict)
    allowed = trunx_config.load(env={}, webhook_allow_private=True)
    bridge.check_tool_urls(call_with("http://127.0.0.1:9/tool"), allowed)
    bridge.check_tool_urls({"ai": {"systemPrompt": "no tools"}}, strict)
