"""`python -m agi_server`: run the FastAGI engine on the effective config."""
from __future__ import annotations

import argparse
import asyncio
import os
import signal

# before numpy loads OpenBLAS (the answering-machine detector's filter bank): its worker
# threads only add hand-offs for products this small, and on a busy machine they stall the
# event loop (make bench, amd section: loop lag p99 55 ms with them, 14 ms without)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from agi_server.engine import Engine, loop_factory, settle_heap
from trunx import config as trunx_config
from trunx import logs, redis_client
from trunx.store import Store


async def serve(cfg) -> None:
    # handlers first: a SIGTERM while the engine starts (a service manager's stop) then
    # stops it cleanly once started, instead of killing it mid-start
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    engine = Engine(cfg, redis_client.async_client(cfg.redis_url),
                    store=Store.open(cfg))
    await engine.start()
    settle_heap()
    await stop.wait()
    await engine.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agi_server", description=__doc__)
    parser.add_argument("--config", help="INI file with a [trunx] section")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    cfg = trunx_config.load(args.config)
    logs.setup(cfg.log_json, args.log_level)    # JSON lines carry call_id, account_id, node
    with asyncio.Runner(loop_factory=loop_factory(cfg.agi_event_loop)) as runner:
        runner.run(serve(cfg))


if __name__ == "__main__":
    main()
