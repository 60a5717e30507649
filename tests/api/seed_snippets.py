"""The request examples of the two seed pages, verbatim (only split where the page
ran them together). Tests substitute the host, the key and example ids, nothing else."""
# ruff: noqa: E501  (the pages' lines, verbatim)

IVR_CREATE_CURL = r'''curl -X POST https://api.trunx.io/ivr \
-H "Authorization: Bearer tk_live_..." \
-H "Content-Type: application/json" \
-d '{
"id": "qualify-business",
"nodes": {
"welcome": {
"audio": "welcome.wav",
"gather": { "1": "has_business", "9": "dnc" },
"timeout_node": "welcome"
},
"has_business": {
"audio": "business_check.wav",
"gather": { "1": "transfer_ai", "2": "unqualified" }
},
"transfer_ai": { "action": "transfer" },
"unqualified": { "action": "hangup", "audio": "not_qualified.wav" },
"dnc": { "action": "suppress" }
}
}'
'''

IVR_CREATE_FETCH = r'''const res = await fetch("https://api.trunx.io/ivr", {
method: "POST",
headers: {
"Authorization": "Bearer tk_live_...",
"Content-Type": "application/json",
},
body: JSON.stringify({
id: "qualify-business",
nodes: {
welcome: {
audio: "welcome.wav",
gather: { "1": "has_business", "9": "dnc" },
timeout_node: "welcome",
},
has_business: {
audio: "business_check.wav",
gather: { "1": "transfer_ai", "2": "unqualified" },
},
transfer_ai: { action: "transfer" },
unqualified: { action: "hangup", audio: "not_qualified.wav" },
dnc: { action: "suppress" },
},
}),
});
const data = await res.json();
'''

IVR_CREATE_PY = r'''import requests
res = requests.post(
"https://api.trunx.io/ivr",
headers={"Authorization": "Bearer tk_live_..."},
json={
"id": "qualify-business",
"nodes": {
"welcome": {
"audio": "welcome.wav",
"gather": {"1": "has_business", "9": "dnc"},
"timeout_node": "welcome",
},
"has_business": {
"audio": "business_check.wav",
"gather": {"1": "transfer_ai", "2": "unqualified"},
},
"transfer_ai": {"action": "transfer"},
"unqualified": {"action": "hangup", "audio": "not_qualified.wav"},
"dnc": {"action": "suppress"},
},
},
)
data = res.json()
'''

IVR_AUDIO_CURL = r'''curl -X POST "https://api.trunx.io/ivr/qualify-business/audio" \
-H "Authorization: Bearer tk_live_..." \
-H "Content-Type: application/json" \
-d '{
"node": "welcome",
"text": "Thank you for calling. Press 1 if you are a business owner. Press 9 to be added to our do not call list.",
"voice": "rachel"
}'
'''

IVR_AUDIO_FETCH = r'''const res = await fetch("https://api.trunx.io/ivr/qualify-business/audio", {
method: "POST",
headers: {
"Authorization": "Bearer tk_live_...",
"Content-Type": "application/json",
},
body: JSON.stringify({
node: "welcome",
text: "Thank you for calling. Press 1 if you are a business owner. Press 9 to be added to our do not call list.",
voice: "rachel",
}),
});
const data = await res.json();
'''

IVR_AUDIO_PY = r'''import requests
res = requests.post(
"https://api.trunx.io/ivr/qualify-business/audio",
headers={"Authorization": "Bearer tk_live_..."},
json={
"node": "welcome",
"text": "Thank you for calling. Press 1 if you are a business owner. Press 9 to be added to our do not call list.",
"voice": "rachel",
},
)
data = res.json()
'''

IVR_ASSIGN_CURL = r'''curl -X POST "https://api.trunx.io/ivr/qualify-business/assign" \
-H "Authorization: Bearer tk_live_..." \
-H "Content-Type: application/json" \
-d '{ "did": "+19495551234" }'
'''

IVR_ASSIGN_FETCH = r'''await fetch("https://api.trunx.io/ivr/qualify-business/assign", {
method: "POST",
headers: {
"Authorization": "Bearer tk_live_...",
"Content-Type": "application/json",
},
body: JSON.stringify({ did: "+19495551234" }),
});
'''

IVR_ASSIGN_PY = r'''import requests
requests.post(
"https://api.trunx.io/ivr/qualify-business/assign",
headers={"Authorization": "Bearer tk_live_..."},
json={"did": "+19495551234"},
)
'''

AUDIO_TTS_CURL = r'''curl -X POST "https://api.trunx.io/audio" \
  -H "Authorization: Bearer tk_live_..." \
  -H "Content-Type: application/json" \
  -d '{
    "name": "Welcome Greeting",
    "text": "Thank you for calling. Please hold while we connect you.",
    "voice": "EXAVITQu4vr4xnSDxMaL"
  }'
'''

AUDIO_TTS_FETCH = r'''const res = await fetch("https://api.trunx.io/audio", {
  method: "POST",
  headers: {
    "Authorization": "Bearer tk_live_...",
    "Content-Type": "application/json",
  },
  body: JSON.stringify({
    name: "Welcome Greeting",
    text: "Thank you for calling. Please hold while we connect you.",
    voice: "EXAVITQu4vr4xnSDxMaL",
  }),
});
const data = await res.json();
'''

AUDIO_TTS_PY = r'''import requests

res = requests.post(
    "https://api.trunx.io/audio",
    headers={
        "Authorization": "Bearer tk_live_...",
        "Content-Type": "application/json",
    },
    json={
        "name": "Welcome Greeting",
        "text": "Thank you for calling. Please hold while we connect you.",
        "voice": "EXAVITQu4vr4xnSDxMaL",
    },
)
data = res.json()
'''

AUDIO_UPLOAD_CURL = r'''curl -X POST "https://api.trunx.io/audio/upload" \
  -H "Authorization: Bearer tk_live_..." \
  -F "file=@greeting.mp3" \
  -F "name=After Hours Greeting"
'''

AUDIO_UPLOAD_FETCH = r'''const formData = new FormData();
formData.append("file", audioFile);
formData.append("name", "After Hours Greeting");

const res = await fetch("https://api.trunx.io/audio/upload", {
  method: "POST",
  headers: { "Authorization": "Bearer tk_live_..." },
  body: formData,
});
const data = await res.json();
'''

AUDIO_UPLOAD_PY = r'''import requests

with open("greeting.mp3", "rb") as f:
    res = requests.post(
        "https://api.trunx.io/audio/upload",
        headers={"Authorization": "Bearer tk_live_..."},
        files={"file": f},
        data={"name": "After Hours Greeting"},
    )
data = res.json()
'''

AUDIO_LIST_CURL = r'''curl "https://api.trunx.io/audio" \
  -H "Authorization: Bearer tk_live_..."
'''

AUDIO_LIST_FETCH = r'''const res = await fetch("https://api.trunx.io/audio", {
  headers: { "Authorization": "Bearer tk_live_..." },
});
const data = await res.json();
'''

AUDIO_LIST_PY = r'''import requests

res = requests.get(
    "https://api.trunx.io/audio",
    headers={"Authorization": "Bearer tk_live_..."},
)
data = res.json()
'''

AUDIO_DELETE_CURL = r'''curl -X DELETE "https://api.trunx.io/audio/aud_abc123" \
  -H "Authorization: Bearer tk_live_..."
'''

AUDIO_DELETE_FETCH = r'''const res = await fetch("https://api.trunx.io/audio/aud_abc123", {
  method: "DELETE",
  headers: { "Authorization": "Bearer tk_live_..." },
});
const data = await res.json();
'''

AUDIO_DELETE_PY = r'''import requests

res = requests.delete(
    "https://api.trunx.io/audio/aud_abc123",
    headers={"Authorization": "Bearer tk_live_..."},
)
data = res.json()
'''

