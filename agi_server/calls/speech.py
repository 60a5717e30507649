"""A speak action's sentences after the first: the engine's side of
admin_api.call_actions.speech.

The API queues a speak with part 0 staged and, for a text of several sentences,
`parts: n` and `stream: <Redis list>`; it pushes each further part ({file, name, duration},
or {error}) onto the list as it is rendered. `Parts.next()` waits for the next one;
`Parts.close()`, when the speak ends early, stops the rendering and returns the names of
parts staged but never played, for the caller to remove.
"""
from __future__ import annotations

import json
import logging

from trunx import redis_schema

log = logging.getLogger(__name__)

PART_WAIT = 30.0      # seconds a part may take to arrive (a sentence renders in about one)


class SpeechFailed(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


class Parts:
    def __init__(self, redis, action_id: str, params: dict, wait: float = PART_WAIT):
        self.redis = redis
        self.action_id = action_id
        self.count = int(params.get("parts") or 1)
        self.key = params.get("stream") or redis_schema.speech_parts_key(action_id)
        self.wait = wait
        self.taken = 1                    # part 0 came with the action

    async def next(self) -> dict | None:
        """The next part, None after the last; SpeechFailed if it failed or never came."""
        if self.taken >= self.count:
            return None
        reply = await self.redis.blpop([self.key], timeout=self.wait)
        if reply is None:
            raise SpeechFailed("speech-incomplete",
                               f"sentence {self.taken + 1} of {self.count} never came")
        part = json.loads(reply[1])
        if "error" in part:
            raise SpeechFailed(part["error"], part.get("message", "a sentence failed"))
        self.taken += 1
        return part

    async def close(self) -> list[str]:
        """Stop the rendering if parts remain; the names of parts staged but not played."""
        if self.taken >= self.count:
            return []
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(redis_schema.speech_stop_key(self.action_id), "1",
                 ex=redis_schema.SPEECH_TTL)
        pipe.lrange(self.key, 0, -1)
        pipe.delete(self.key)
        _, left, _ = await pipe.execute()
        names = []
        for raw in left:
            try:
                part = json.loads(raw)
            except ValueError:
                continue
            if part.get("name"):
                names.append(part["name"])
        return names
