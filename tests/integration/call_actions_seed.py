"""The curl examples of the Call Actions seed page, verbatim. Tests substitute the host, the
key, the account id, the call id and the example.com URLs, nothing else."""
# ruff: noqa: E501  (the page's lines, verbatim)

SEED_CALL = "650e8400-e29b-41d4-a716-446655440000"
TRANSFER = r'''curl -X POST https://api.tryvox.io/v1/voice/accounts/your_auth_id/calls/650e8400-e29b-41d4-a716-446655440000/transfer \
-H "Authorization: Bearer tvx_sk_live_..." \
-H "Content-Type: application/json" \
-d '{
"to": "+14155559999",
"caller_id": "+14155551234",
"answer_url": "https://example.com/transfer-answer"
}'
'''
RECORD = r'''curl -X POST https://api.tryvox.io/v1/voice/accounts/your_auth_id/calls/650e8400-e29b-41d4-a716-446655440000/record \
-H "Authorization: Bearer tvx_sk_live_..." \
-H "Content-Type: application/json" \
-d '{
"format": "mp3",
"max_length": 3600,
"trim_silence": true
}'
'''
STOP = r'''curl -X DELETE https://api.tryvox.io/v1/voice/accounts/your_auth_id/calls/650e8400-e29b-41d4-a716-446655440000/record \
-H "Authorization: Bearer tvx_sk_live_..."
'''
PLAY = r'''curl -X POST https://api.tryvox.io/v1/voice/accounts/your_auth_id/calls/650e8400-e29b-41d4-a716-446655440000/play \
-H "Authorization: Bearer tvx_sk_live_..." \
-H "Content-Type: application/json" \
-d '{
"url": "https://example.com/hold-music.mp3",
"loop": 0
}'
'''
SPEAK = r'''curl -X POST https://api.tryvox.io/v1/voice/accounts/your_auth_id/calls/650e8400-e29b-41d4-a716-446655440000/speak \
-H "Authorization: Bearer tvx_sk_live_..." \
-H "Content-Type: application/json" \
-d '{
"text": "Thank you for calling. Please hold while we connect you.",
"voice": "en-US-Neural-Jenny",
"language": "en-US",
"engine": "neural"
}'
'''
DTMF = r'''curl -X POST https://api.tryvox.io/v1/voice/accounts/your_auth_id/calls/650e8400-e29b-41d4-a716-446655440000/dtmf \
-H "Authorization: Bearer tvx_sk_live_..." \
-H "Content-Type: application/json" \
-d '{
"digits": "1234*#"
}'
'''

