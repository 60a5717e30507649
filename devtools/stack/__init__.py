"""Process management for development and tests: throwaway Redis and real Asterisk instances.

Used by tests/integration/conftest.py and by `make run` (devtools/run.py).
"""
from .asterisk import (
                       Asterisk,
                       AsteriskError,
                       RootMissing,
                       find_root,
                       pbx_and_carrier,
                       render_config,
)
from .docker import ContainerAsterisk, backend, container_root, docker_answers
from .procs import free_port, wait_until, wait_until_async
from .redis import RedisServer

__all__ = [
                       "Asterisk",
                       "AsteriskError",
                       "ContainerAsterisk",
                       "RedisServer",
                       "RootMissing",
                       "backend",
                       "container_root",
                       "docker_answers",
                       "find_root",
                       "free_port",
                       "pbx_and_carrier",
                       "render_config",
                       "wait_until",
                       "wait_until_async",
]
