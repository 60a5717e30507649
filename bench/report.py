"""docs/benchmarks.md from the results `python -m bench` gathered."""
from __future__ import annotations

import datetime as dt


def _n(x, fmt="{:,.0f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _ms(x) -> str:
    return _n(x, "{:.3f} ms")


def _x(ours, theirs) -> str:
    if ours is None or not theirs:
        return "n/a"
    return f"{ours / theirs:.2f}x"


# the row of 100 calls in progress at a caller's pace (bench.agi_bench PACED_CALLS)
PACED = "100 calls at a caller's pace"


def _met(ok) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


# What the API's hot path does and what each change measured (section 3's note).
API_HOT_PATH = (
    "What a request costs, and what took the cost out (CPU measured in one process through "
    "WSGI, one thread and 16 threads, and under gunicorn as above): GET /ivr/:id had fallen "
    "from 0.80x to 0.39x when two things joined every request. The rate limit's Redis "
    "round trip (INCR + EXPIRE per request, ~0.4 ms of CPU under gunicorn's threads) is "
    "now a lease of several tokens from the same shared count (admin_api/rate_limit.py: "
    "never past the limit, about 16 round trips a second per busy worker and account). The "
    "access log's handler lock, taken for every line by 16 threads that then wrote to "
    "stderr holding it, cut one process from 3,100 to 900 GETs a second; lines are now "
    "written by one thread per worker in batches (admin_api/access_log.py): ~2,300. "
    "Flask's per-hook coroutine check and the metrics' label lookups are done once "
    "(~40 us a GET). POST /ivr: the IVR, version, named-asset, default-transfer and "
    "outbox statements are built once (3.8 -> 1.9 ms of CPU in one process), and the saves "
    "a worker holds at once share one turn of the writer lock: one transaction with a "
    "savepoint each, one publish pipeline in commit order, one outbox UPDATE "
    "(trunx/group_commit.py). POST /api/voice: the same group commit (one transaction, one "
    "pipeline of outbox applies), and the queued-calls quota counts index entries, not a "
    "call row per queued call (the burst's own queue made each request slower). Measured "
    "in pairs against the commit before this work, alternating, on this machine shared "
    "with other work (load average ~20): GET CPU per request 1.23-1.33 -> 0.89-0.93 ms "
    "(0.44-0.45x -> 0.50-0.66x bare), POST /ivr 5.2-5.7 -> 3.2-3.5 ms (0.07x -> "
    "0.13-0.15x), the campaign's burst 8.1-10.7 -> 5.6-7.3 s. Still over the bare app "
    "under gunicorn: the same code costs 2-3x its single-thread CPU with 16 threads a "
    "worker (GIL hand-offs at every SQLite statement and socket call).",
    "",
    "Then, measured in alternating pairs (the servers' CPU per request, medians of 6-10 "
    "two-second wrk runs each; campaign bursts of 1,000 calls, medians of 4), on this "
    "machine shared with other work: fewer threads a worker do not pay. Against 4 x 16 "
    "beside it in the same run, 4 x 4 used 1.04 against 0.95 ms a GET and 3.9 against "
    "3.1 ms a POST /ivr, 8 x 4 1.20 and 4.0, 3 x 24 0.79 against 0.85 and 2.9 against "
    "2.7, 2 x 32 0.90 and 3.1: a worker's group commit takes fewer saves a turn with "
    "fewer threads, so the serving model stays. POST /api/voice's DNC check asks SQLite "
    "alone (its probe ran anyway whenever Redis said no): one Redis round trip a call "
    "fewer, the burst's API CPU 3.07 -> 2.89 ms a call (3.25 -> 2.79 in a set that also "
    "had the key window below). "
    "POST /ivr finds a taken id by the INSERT's unique index instead of a SELECT first, "
    "and one stager answers a publish's sound checks: not measurable above the noise "
    "(medians 2.8-3.1 ms both ways). A key recheck window (a worker trusting a key for a "
    "second instead of probing its row on every request) was measured and left out: "
    "15-30 us of a GET in one thread, within the noise under gunicorn, for a revoked "
    "key's second of trust. In one thread a GET costs ~0.25-0.30 ms against the bare "
    "app's ~0.12-0.15 ms: Flask's hooks, the key probe and the memo's query, the metrics "
    "(~8 us) and the access line (~12 us); the rest of the gap under gunicorn is the "
    "threads' hand-offs (context switches a GET: ~7 against the bare app's ~3.5).",
)

class Report:
    def __init__(self, results: dict):
        self.r = results
        self.lines: list[str] = []
        self.targets: list[tuple] = []

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def target(self, figure, ours, theirs, ratio, target, ok) -> None:
        self.targets.append((figure, ours, theirs, ratio, target, _met(ok)))

    # -- sections ---------------------------------------------------------------------
    def _loops(self, a: dict) -> None:
        shipped = a["loop"]
        self.add("", "### The event loop, and the floor under both servers (c=100)", "",
                 f"trunx's engine ships on {shipped} (`agi_event_loop`); the table above runs "
                 "both servers on it. Here both run on each loop, next to the floor: an "
                 "asyncio Protocol that writes the same hard-coded commands, one per reply "
                 "line, and parses nothing (`python -m bench.baseline_agi --kind floor`). "
                 "Its CPU per call is what the event loop and the socket system calls "
                 f"(accept, {len(a['expect'])} sends, {len(a['expect']) + 1} receives, close) "
                 "cost alone: no Python FastAGI server "
                 "on that loop goes below it. \"Above the floor\" is each server's own "
                 "work per call: parsing, and for trunx the tree walk, the call record, the "
                 "live-call registry and its checks.", "",
                 "| loop | server | calls/s | CPU ms/call | above the floor, ms/call |",
                 "|---|---|---|---|---|")
        for loop, sides in a["loops"].items():
            floor = sides.get("floor", {}).get("server_cpu_ms_per_session")
            for name, label in (("engine", "trunx"), ("baseline", "panoramisk"),
                                ("floor", "floor")):
                r = sides.get(name)
                if r is None:
                    continue
                cpu = r["server_cpu_ms_per_session"]
                above = f"{cpu - floor:.2f}" if floor is not None and name != "floor" else ""
                self.add(f"| {loop}{' (shipped)' if loop == shipped else ''} | {label} | "
                         f"{_n(r['sessions_per_s'])} | {cpu:.2f} | {above} |")

    def _parts(self, parts: list[dict], panoramisk: float, commands: int) -> None:
        whole = parts[0]["cpu_ms"]
        self.add("", "### Where the time goes: the engine with one part switched off (c=100)",
                 "", "The engine again at c=100, once as shipped and once with each part of "
                 "its per-call work switched off (`python -m bench.engine_proc --without "
                 "PART`: the bench's own switches, not the engine's), side by side and "
                 "interleaved; CPU per call is the best of the runs. The difference to the "
                 "first row is what that part costs a call. The last row is the engine's "
                 "FastAGI layer alone (its parser, sessions and channel facade) sending the "
                 f"same {commands} commands; panoramisk used {panoramisk:.2f} ms in the table "
                 "above. Each engine is warmed by a short run first. On a machine shared "
                 "with other work the runs of one engine have differed by up to 0.5 ms, so "
                 "read the order of the costs more than their size.", "",
                 "The record writer (a child process of the engine, `record_writer = "
                 "process`) is not in the engine's CPU: its own is the next column, from the "
                 "same run.", "",
                 "| engine | CPU ms/call (runs) | the part costs | record writer CPU ms/call |",
                 "|---|---|---|---|")
        for row in parts:
            runs = ", ".join(f"{x:.2f}" for x in row["cpu"])
            cost = "" if row is parts[0] else f"{whole - row['cpu_ms']:.2f} ms"
            writer = row.get("writer_cpu_ms")
            self.add(f"| {row['label']} | {row['cpu_ms']:.2f} ({runs}) | {cost} | "
                     f"{'' if not writer else f'{writer:.2f}'} |")
        self.add("", "What changed on the hot path, and what it was worth (measured when made, "
                 "A/B against the previous commit on this machine):", "",
                 "- The collector: after start the engine freezes its heap (`gc.freeze`) and "
                 "runs gen0 every 20,000 allocations instead of 700 "
                 "(agi_server/engine.py `settle_heap`). In an in-process run of 5,000 calls "
                 "(sockets replaced by a transport that answers on the next loop turn), GC "
                 "took 80 us of each call's CPU before and 23 us after.",
                 "- Metrics: a call's counters are looked up once per label set and kept "
                 "(agi_server/metrics.py), not through prometheus_client's `labels()` once a "
                 "path step.",
                 "- Both together, engine at c=100 beside the previous commit, 4 interleaved "
                 "runs each on a machine shared with other work: best 0.82 vs 0.95 ms CPU per "
                 "call (median 0.89 vs 1.38); panoramisk 0.30.",
                 "- The parser: the common reply (`200 result=N[ endpos=M]`) and \"nothing "
                 "whole yet\" (asked twice per command) are matched on the buffer's bytes "
                 "before the general path (agi_server/agi/protocol.py, same verdicts: the "
                 "fuzz tests feed both); a STREAM FILE line is checked and quoted once per "
                 "(file, escape digits) (agi_server/agi/commands.py). Counted with callgrind "
                 "on the in-process run (instructions per call, 400 calls): 2.26 M -> 2.10 M "
                 "(-7%); a first pair of runs differed far more (4.96 M vs 1.33 M), as the "
                 "batching of records and index writes follows the clock.",
                 "- The GIL's switch interval: 50 ms instead of Python's 5 ms, set with the "
                 "collector's (agi_server/engine.py `SWITCH_INTERVAL`). The database thread "
                 "takes the GIL between SQLite calls; at 5 ms its waits forced the loop's "
                 "thread into hand-offs far more often. Interleaved with the default, 2 runs "
                 "each: CPU per call 1.28-1.47 vs 2.63-2.66 ms at c=1 and 1.03-1.16 vs "
                 "1.19-1.30 ms at c=100 (4 more runs at c=100: best 0.80 vs 1.12); p99 per "
                 "command inside the engine at c=1 0.21-0.31 vs 0.30-0.35 ms, at c=100 "
                 "1.66-2.59 vs 1.77-1.99 ms. The cost: a thread running Python for long (a "
                 "resync from SQLite after Redis lost its data) can hold the loop up to 50 ms "
                 "at a time instead of 5.",
                 "- The first four against the code before them, 4 interleaved runs each at "
                 "c=100 on a saturated machine: best 0.83 vs 0.92 ms CPU per call, median 1.00 vs "
                 "1.57; panoramisk best 0.30.",
                 "- The record writer: call records (start, checkpoint and final rows, and "
                 "their visit rows) are written by a child process the engine owns "
                 "(agi_server/calls/record_sink.py, record_writer.py) instead of the "
                 "engine's database thread; the engine hands each batch over a socketpair "
                 "and its waiters resolve on the child's commit. Its worth is the row "
                 "\"records on the engine's database thread\" above against the first, "
                 "and the writer's own CPU beside it. When made: two whole `--only agi` "
                 "runs back to back, one with `record_writer = process` and one with "
                 "`thread` (machine shared, about half its CPU taken by other work): engine "
                 "CPU per call (best of 2) 1.32 vs 2.14 ms at c=1, 1.09 vs 1.68 at c=10, "
                 "1.05 vs 1.49 at c=100; with the writer's own added (0.58, 0.40, 0.28) "
                 "still below the thread. Short interleaved A/B runs of the two at c=100 "
                 "on the saturated machine went both ways (process 2.0-2.9 vs thread "
                 "2.8-4.5 ms in some, 1.6-2.9 vs 1.0-2.1 in others): a third busy process "
                 "on 2 cores also slows the load generator, and the engine's CPU per call "
                 "rises as its rate falls. The p99 per command inside the engine at c=1 was "
                 "higher with the process in both whole runs (2.45 and 1.12 ms, against "
                 "0.54 and 0.41 with the thread before it) and in some short ones (0.38-5.5 "
                 "vs 0.37-0.44 ms): the writer's wakeups take the core from the loop, where "
                 "the thread waited for the GIL. Not done: skipping the visit rows' "
                 "DELETE for a call none of whose rows had a path yet "
                 "(trunx/ivr/visits.py `replace`): the DELETE of no rows costs about 1 us of "
                 "CPU per call id (500 batches of 20, SQLite), against about 250 us for "
                 "writing a call's start and final rows.",
                 "- Per-call work the loop no longer does (py-spy at c=100 found each): a "
                 "call's path is handed to the live-call index as a value encoded when its "
                 "batch is written, not JSON-encoded at every node (a call that ends before "
                 "its batch never encodes it); the wait for the first row before ANSWER is a "
                 "timer on the row's future, not `asyncio.wait_for` (a task a call); a DID "
                 "whose tree is all in memory is served without `asyncio.timeout` (its timer "
                 "guarded Redis reads that never happen); `iso()` through `isoformat`. "
                 "Interleaved at c=100 against the code before them, 3 runs each on a "
                 "machine shared with other work: engine CPU per call 0.89-0.96 -> "
                 "0.73-0.94 ms.",
                 "- AMI events (real calls only: the emulated rows above have no AMI "
                 "traffic): the common event goes from the bytes straight into the dict the "
                 "engine's listeners get (agi_server/ami/client.py `_FastEvents`), without "
                 "panoramisk's Message (a case-insensitive dict, a Python call a header) and "
                 "its pattern match; under the SIP bench those were about a quarter of the "
                 "engine's busy samples (py-spy). Responses, an action's own events and "
                 "unusual ones still go through panoramisk; a unit test feeds both paths one "
                 "session's bytes and compares. One SIP run each, before this and the "
                 "changes in the bullet above and after them all: engine CPU per SIP call "
                 "3.73 -> 3.10 ms (Asterisk 35.4 / 36.3 ms); a third run after them gave "
                 "3.63 ms (Asterisk 37.5).",
                 "",
                 "What remains is Python work spread thin over the call: no function owns "
                 "more than a few percent (py-spy below). The parts that are not the tree "
                 "walk itself (records, the live-call index, the action session, metrics and "
                 "webhook checks) are what the other rows price. The call record's SQL now "
                 "runs in the record writer's process; what the engine keeps of it is "
                 "encoding each row's values, pickling the batch and the socket round trip "
                 "(the \"without writing call records\" row prices that). The index writes "
                 "cost a call nothing when it ends before its announcement is due "
                 "(`live_batch_delay`).")

    def _overhead(self, o: dict) -> None:
        eo, bo, inside = o["engine"]["overhead"], o["baseline"]["overhead"], \
            o["engine"]["inside_engine"]
        c100, paced = o.get("engine_c100"), o.get("engine_paced")
        self.add("", "### Per-command overhead", "",
                 "Two clocks. *Seen by the emulator*: from writing a reply to reading the next "
                 "command (loopback and both event loops included). *Inside the engine*: "
                 "from the read that returned the reply to the write of the next command "
                 "(`bench.engine_proc`, a subclass of the engine's session that only adds "
                 "clock readings). The first command of a call (after the agi_* block and "
                 "the DID lookup) is left out. The rows differ in the load, and so in what "
                 "they measure:", "",
                 "- **c=1**: one caller, each call starting when the last ends, no pause "
                 "between a command and its reply: the engine's own path for a command, on "
                 "a loop with nothing else to do.",
                 "- **c=100, saturated**: the closed loop of the table above at c=100, no "
                 "pause: the engine's core is saturated, replies arrive together, and a "
                 "reply waits for the loop to finish the other calls' work that arrived "
                 "with it. That measures queueing at saturation more than the engine's "
                 "latency: the split below shows it (read -> the call's task resumes is the "
                 "wait for the loop; resumes -> next command written is the call's own work).",
                 f"- **{PACED}**: 100 callers, each starting a new call when theirs ends, "
                 "but each reply to a command that plays a prompt or waits for a key "
                 "(STREAM FILE, GET OPTION, WAIT FOR DIGIT) comes 0.25-0.75 s after the "
                 "command (evenly drawn, seeded; real prompts last seconds): 100 calls in "
                 "progress at once, at a pace that leaves the engine's core mostly idle. "
                 "This is the engine's latency per command with 100 calls up.", "",
                 "| load | clock | p50 | p90 | p99 | samples |", "|---|---|---|---|---|---|",
                 f"| c=1 | trunx, seen by the emulator | {_ms(eo['p50_ms'])} | "
                 f"{_ms(eo['p90_ms'])} | {_ms(eo['p99_ms'])} | {eo['samples']:,} |",
                 f"| c=1 | trunx, inside the engine | {_ms(inside['p50_ms'])} | "
                 f"{_ms(inside.get('p90_ms'))} | {_ms(inside['p99_ms'])} | "
                 f"{inside['samples']:,} |",
                 f"| c=1 | baseline, seen by the emulator | {_ms(bo['p50_ms'])} | "
                 f"{_ms(bo['p90_ms'])} | {_ms(bo['p99_ms'])} | {bo['samples']:,} |")
        if c100 and c100.get("p99_ms") is not None:
            self.add(f"| c=100, saturated | trunx, inside the engine | {_ms(c100['p50_ms'])} "
                     f"| {_ms(c100.get('p90_ms'))} | {_ms(c100['p99_ms'])} | "
                     f"{c100['samples']:,} |")
        if paced:
            pi, pe = paced["inside_engine"], paced["overhead"]
            self.add(f"| {PACED} | trunx, seen by the emulator | {_ms(pe['p50_ms'])} | "
                     f"{_ms(pe['p90_ms'])} | {_ms(pe['p99_ms'])} | {pe['samples']:,} |",
                     f"| {PACED} | trunx, inside the engine | {_ms(pi['p50_ms'])} | "
                     f"{_ms(pi.get('p90_ms'))} | {_ms(pi['p99_ms'])} | {pi['samples']:,} |")
        self.add("", "Inside the engine, split: the wait for the loop (read -> the call's "
                 "task resumes: parsing the reply, the rest of that loop turn, the wake-up) "
                 "and the call's own work (resumes -> the next command's write returned), "
                 "and within the own work the write itself (the send system call: on "
                 "loopback the kernel does the receiving socket's TCP work and wakes the "
                 "peer inside it), p50 / p99 of each; and the collector's runs while "
                 "measuring.", "",
                 "| load | wait for the loop p50 / p99 | own work p50 / p99 | of it, the "
                 "send p50 / p99 | read -> the write call (the send left out) p50 / p99 | "
                 "collections (count, longest) |", "|---|---|---|---|---|---|")
        for label, t in (("c=1", inside), ("c=100, saturated", c100),
                         (PACED, paced and paced["inside_engine"])):
            if not t or t.get("queue_p50_ms") is None:
                continue
            gcs = t.get("gc") or {}
            runs = ", ".join(f"gen{g}: {v['count']}, {v['max_ms']:.1f} ms"
                             for g, v in sorted(gcs.items())) or "none"
            self.add(f"| {label} | {_ms(t['queue_p50_ms'])} / {_ms(t['queue_p99_ms'])} | "
                     f"{_ms(t['own_p50_ms'])} / {_ms(t['own_p99_ms'])} | "
                     f"{_ms(t.get('send_p50_ms'))} / {_ms(t.get('send_p99_ms'))} | "
                     f"{_ms(t.get('to_send_p50_ms'))} / {_ms(t.get('to_send_p99_ms'))} | "
                     f"{runs} |")
        self.add("", "What makes up these figures, measured while the paced row was added "
                 "(`python -m bench.engine_proc` timing with `detail`: the loop thread's and "
                 "the database thread's CPU clocks per command; on this machine shared with "
                 "other work, load average 5 to 14; on the 7-command walk, before a question "
                 "became one GET OPTION):", "",
                 "- c=1: a command's own Python work up to its write (p50 0.07-0.09 ms), "
                 "the send (p50 0.05 ms) and the wait for the loop (p50 0.02-0.03 ms: "
                 "parsing, the loop turn, the wake-up). Up to the write call the p99 was "
                 "0.19 ms in a full run; the slowest 1% to the write's return spent most of "
                 "their time (0.54 of 0.76 ms on average) inside the send: on loopback the "
                 "kernel wakes the load generator there, and with 2 cores shared with it "
                 "(and with other work) the engine's thread can lose its core to the woken "
                 "peer before the send returns. By the thread's CPU clock, the slowest 1% "
                 "were mostly time off the CPU (0.55-0.94 ms of 0.69-1.09 ms). Not the GIL: "
                 "the database thread used no CPU during those commands; and no collection "
                 "ran in them. The loop thread's own CPU per command was p50 0.10-0.11 ms, "
                 "p99 0.23-0.28 ms; the second command of a call (the first after ANSWER) "
                 "costs most (CPU p50 0.18 ms; on the 5-command walk it is the first GET "
                 "OPTION, CPU p50 0.21 ms at load average 10).",
                 "- The paced row depends most on the machine: its replies find the "
                 "engine idle, so each one waits for the OS to give the loop's thread a "
                 "core. Four runs of the same paced load gave p99 0.77, 0.78, 4.7 and "
                 "106 ms as the load average went from 5 to 10; in the slow ones the "
                 "slowest 1% were off the CPU for nearly all their time (10.7 of 11.5 ms; "
                 "303 of 313 ms) with the database thread idle and no collection in them.",
                 "- c=100 saturated: the wait for the loop is nearly all of it (p99 8.1 of "
                 "8.3 ms in one run; own work p99 0.57 ms). With the call records switched "
                 "off (`--without records`, what taking the record writes off the engine "
                 "leaves) the same run gave 846 calls/s instead of 447 and a p99 of 2.8 ms "
                 "instead of 8.3: less work per call, so shorter queues; still queueing.",
                 "- The collector: a generation-0 run took 7-25 ms, about once a second at "
                 "c=100, and overlapped 9-13% of the slowest 1% there. Each run frees about "
                 "10,000 objects, some 15 per call: every call's objects stay in a "
                 "reference cycle (`CallSession.channel` -> `LiveChannel`, "
                 "`LiveChannel._session` -> `CallSession`, agi_server/calls/session.py) "
                 "that only the collector frees, and the call's AGISession, parser, Channel, "
                 "CallRecord and their lists go with it. Breaking the cycle when the call's "
                 "action session ends (`s.channel = None` at the end of "
                 "agi_server/calls/registry.py `session`, tried but not made here: outside "
                 "this change) left no call's object among the collector's finds "
                 "(`gc.DEBUG_SAVEALL`: 209 objects over about 1,000 calls at c=100, none "
                 "per call, against 15 per call without it).",
                 "- Waking the command's task in the read callback instead of on the "
                 "loop's next turn (a future subclass that runs the task's wake-up at "
                 "once): tried and reverted. In-process on uvloop, reply -> next command "
                 "took p50 15.5 us with it and 10.7 us without: the loop turn costs less "
                 "than the subclass's Python-level callbacks. At c=100 saturated it moved "
                 "the wait to before the read (inside the engine p99 0.29 ms instead of "
                 "15 ms) while the emulator's p99 stayed at 30 ms: the same queue, outside "
                 "the clock.")
        if paced:
            pi = paced["inside_engine"]
            tail = pi.get("tail", {})
            self.add("", f"{PACED}: {paced['sessions_per_s']:.0f} calls/s, "
                     f"{paced['ok']:,} of {paced['sessions']:,} on the expected path; the "
                     f"engine used {paced['server_cpu_share']:.0%} of a core. Measured with "
                     "the CPU clocks too (about 2 us a command): the loop thread's own CPU "
                     f"per command p50 {_ms(pi.get('cpu_p50_ms'))}, p99 "
                     f"{_ms(pi.get('cpu_p99_ms'))}; the slowest 1% took "
                     f"{_ms(tail.get('ms'))} on average, of which the loop's thread was off "
                     f"the CPU {_ms(tail.get('off_cpu_ms'))} (waiting for a core or for the "
                     "GIL) while the database thread used "
                     f"{_ms(tail.get('db_cpu_ms'))} of CPU.")
        self.target("p99 overhead per command (emulator, c=1)", _ms(eo["p99_ms"]),
                    _ms(bo["p99_ms"]), _x(eo["p99_ms"], bo["p99_ms"]), "<= 0.3 ms",
                    eo["p99_ms"] <= 0.3)
        self.target("p99 per command inside the engine, c=1 (one call at a time)",
                    _ms(inside["p99_ms"]), "", "", "<= 0.2 ms", inside["p99_ms"] <= 0.2)
        if paced:
            pi = paced["inside_engine"]
            self.target(f"p99 per command inside the engine, c=100: {PACED}",
                        _ms(pi["p99_ms"]), "", "", "<= 1 ms",
                        pi["p99_ms"] <= 1.0 and paced["ok"] == paced["sessions"])
        if c100 and c100.get("p99_ms") is not None:
            self.target("p99 per command inside the engine, c=100 saturated closed loop "
                        "(mostly queueing: see section 1)", _ms(c100["p99_ms"]), "", "",
                        "<= 1 ms", c100["p99_ms"] <= 1.0)

    def agi(self, a: dict) -> None:
        levels = a["levels"]
        self.add("## 1. FastAGI: trunx's engine vs a panoramisk app, emulated Asterisk", "",
                 f"Both servers on {a.get('loop', 'asyncio')}, the loop trunx ships on. "
                 "The walk is the seed tree's: answer, the welcome prompt and the caller's "
                 "key 1, the business_check prompt and the key 2, the not_qualified prompt, "
                 f"hangup: {len(a['expect'])} AGI commands a call "
                 f"(`{' | '.join(a['expect'])}`). Both servers were checked to send exactly "
                 "this sequence to `bench.agi_emulator.run_session` "
                 f"(engine: {a['sequence']['engine'] == a['expect']}, baseline: "
                 f"{a['sequence']['baseline'] == a['expect']}). The baseline is "
                 "`panoramisk.fast_agi.Application` with one `async def` route that sends the "
                 "sequence hard-coded (no tree, no record, no checks): no 3.11 shim was "
                 "needed, since an `async def` route never reaches panoramisk's "
                 "`asyncio.coroutine` call. Each server runs in its own process, the load "
                 "generator (`bench.loadgen`: the emulator's replies as an asyncio Protocol) "
                 "in a third; the machine has 2 cores, so at full load the server gets about "
                 "one core. Closed loop: `c` callers each start a new call when theirs ends; "
                 "calls ending inside the measured window count. Each figure is the best of "
                 f"{len(a['rate'][levels[0]]['engine']['all_rates'])} interleaved runs "
                 "(all runs are listed); CPU ms/call is the server's own CPU time per call, "
                 "which depends far less on other load on the machine.", "",
                 "| concurrency | trunx calls/s | baseline calls/s | trunx ÷ baseline | "
                 "trunx CPU ms/call | trunx's record writer CPU ms/call | baseline CPU "
                 "ms/call | every call on the expected path | all runs (trunx / baseline) |",
                 "|---|---|---|---|---|---|---|---|---|")
        for c in levels:
            e, b = a["rate"][c]["engine"], a["rate"][c]["baseline"]
            self.add(f"| {c} | {_n(e['sessions_per_s'])} | {_n(b['sessions_per_s'])} | "
                     f"{_x(e['sessions_per_s'], b['sessions_per_s'])} | "
                     f"{e['server_cpu_ms_per_session']:.2f} | "
                     f"{_n(e.get('writer_cpu_ms_per_session'), '{:.2f}')} | "
                     f"{b['server_cpu_ms_per_session']:.2f} | "
                     f"{'yes' if e['all_ok'] and b['all_ok'] else 'NO'} | "
                     f"{', '.join(_n(x) for x in e['all_rates'])} / "
                     f"{', '.join(_n(x) for x in b['all_rates'])} |")
        busiest = max(a["rate"][c][side]["loadgen_cpu_share"] for c in levels
                      for side in ("engine", "baseline"))
        self.add("", f"The load generator ran on {a['loadgen_loop']}; the most CPU it used "
                 f"in any run was {busiest:.0%} of a core, so it was not what limited the "
                 "rates." if busiest < 0.9 else f"The load generator ran on "
                 f"{a['loadgen_loop']} and used up to {busiest:.0%} of a core: at that rate "
                 "it may be what limits the figures.")
        if a.get("loops"):
            self._loops(a)
        e100, b100 = a["rate"][100]["engine"], a["rate"][100]["baseline"]
        self.target("calls/s at c=100 vs baseline", _n(e100["sessions_per_s"]),
                    _n(b100["sessions_per_s"]), _x(e100["sessions_per_s"],
                                                   b100["sessions_per_s"]),
                    ">= 1.5x", e100["sessions_per_s"] >= 1.5 * b100["sessions_per_s"])
        ecpu, bcpu = e100["server_cpu_ms_per_session"], b100["server_cpu_ms_per_session"]
        self.target("engine CPU per call at c=100 vs panoramisk (every feature on)",
                    f"{ecpu:.2f} ms", f"{bcpu:.2f} ms", _x(ecpu, bcpu), "<= 1.0x",
                    ecpu <= bcpu)
        wcpu = e100.get("writer_cpu_ms_per_session")
        if wcpu is not None:     # the records' SQL left the engine's process: counted here
            self.target("engine + its record writer process, CPU per call at c=100 vs "
                        "panoramisk", f"{ecpu:.2f} + {wcpu:.2f} ms", f"{bcpu:.2f} ms",
                        _x(ecpu + wcpu, bcpu), "(reported)", None)
        self.target("calls/s at c=100, absolute", _n(e100["sessions_per_s"]), "", "",
                    ">= 3,000/s", e100["sessions_per_s"] >= 3000)
        wrong = {c: a["rate"][c][s]["wrong_examples"] for c in levels for s in
                 ("engine", "baseline") if a["rate"][c][s]["wrong_examples"]}
        if wrong:
            self.add("", f"Calls off the expected path: `{wrong}`")
        self._overhead(a["overhead"])
        h = a["hold"]
        he, hb = h["engine"], h["baseline"]
        delay = a.get("hold_delay", 1.0)
        self.add("", f"### Holding calls open ({delay:g} s before every reply)", "",
                 f"{he['sessions']:,} calls opened over 2 s; every reply waits {delay:g} s, "
                 f"so each call lasts about {delay * len(a['expect']):g} s, longer than the "
                 "servers take to let them all in, and all are open at once. Fresh "
                 "server processes; trunx's engine is started with `agi_max_sessions` = "
                 f"{_n(a.get('hold_max_sessions'))} (shipped: 2,000; past it the engine "
                 "refuses a connection at once, by design), so this measures holding calls, "
                 "not the cap. RSS "
                 "per call is (RSS at the peak - RSS when idle) / calls open at the peak.", "",
                 "| | calls open at the peak (server) | on the expected path | lost | "
                 "RSS idle | RSS per open call |", "|---|---|---|---|---|---|")
        for name, x in (("trunx", he), ("baseline", hb)):
            self.add(f"| {name} | {x['server_peak_sessions']:,} | {x['ok']:,} | "
                     f"{x['lost']:,} | {x['rss_idle'] / 2**20:.1f} MiB | "
                     f"{_n(x['rss_per_session'] and x['rss_per_session'] / 1024, '{:.1f}')}"
                     f" KiB |")
        if he["errors"] or hb["errors"]:
            self.add("", f"Errors: trunx `{he['errors']}`, baseline `{hb['errors']}`")
        self.target(f"calls held open at once ({he['sessions']:,} asked)",
                    f"{he['server_peak_sessions']:,} ({he['lost']} lost)",
                    f"{hb['server_peak_sessions']:,} ({hb['lost']} lost)",
                    _x(he["server_peak_sessions"], hb["server_peak_sessions"]),
                    ">= 5,000, none lost",
                    he["server_peak_sessions"] >= 5000 and he["lost"] == 0)
        self.target("RSS per open call", _n(he["rss_per_session"] and
                                            he["rss_per_session"] / 1024, "{:.1f} KiB"),
                    _n(hb["rss_per_session"] and hb["rss_per_session"] / 1024,
                       "{:.1f} KiB"), _x(he["rss_per_session"], hb["rss_per_session"]),
                    "(reported)", None)
        rd = a["redis"]
        by = ", ".join(f"{k} x{n}" for k, n in sorted(rd["by_command"].items())) or "none"
        trips = rd["cache_reads"] + rd.get("live_batches", 0)
        per_call = trips / rd["calls"] if rd["calls"] else None
        self.add("", "### Redis on the hot path", "",
                 f"During one c={rd['concurrency']} run (about {rd['seconds']:.0f} s) the engine "
                 f"took {rd['calls']:,} calls. Its tree cache read Redis {rd['cache_reads']} "
                 "times (`engine.cache.redis_reads`): a call's tree comes from memory. Its "
                 "live-call registry (agi_server/calls/live_index.py: what the API's call actions "
                 f"check) wrote {rd.get('live_batches', 0):,} batches, each one EVALSHA "
                 "whatever its size, off the "
                 "calls' path. Redis counted these commands in all (`INFO commandstats` "
                 "before and after, INFO itself left out; the registry script's own HSET, "
                 f"EXPIRE, ZADD, DEL and ZREM count too): {by}. A round trip per node would "
                 f"be at least {5 * rd['calls']:,}. (`xreadgroup` is the live-call command "
                 "reader (agi_server/calls/intake.py) blocking 1 s at a time, whatever the "
                 "load.)")
        self.target("Redis round trips on the hot path (warm cache)",
                    f"{rd['cache_reads']} tree reads, {rd.get('live_batches', 0):,} registry "
                    f"batches in {rd['calls']:,} calls ({_n(per_call, '{:.3f}')}/call)", "",
                    "", "none per node", rd["cache_reads"] == 0 and per_call is not None
                    and per_call < 1)
        if a.get("parts"):
            self._parts(a["parts"], b100["server_cpu_ms_per_session"], len(a["expect"]))
        if a.get("profile", {}).get("samples"):
            p = a["profile"]
            self.add("", "### Where the engine's time goes (py-spy, c=100)", "",
                     f"{p['samples']:,} samples of the engine process (all threads). "
                     "Inclusive share of trunx's own functions:", "",
                     "| function | share of samples |", "|---|---|")
            self.add(*(f"| `{f}` | {s:.0%} |" for f, s in p["inclusive_ours"]))
            self.add("", "Self time (the frame on top of the stack):", "",
                     "| function | share of samples |", "|---|---|")
            self.add(*(f"| `{f}` | {s:.0%} |" for f, s in p["self"]))
        self.add("")

    def asterisk(self, s: dict) -> None:
        self.add("## 2. Real Asterisk: concurrent IVR calls on Local channels", "",
                 f"Asterisk 22 (our PBX: asterisk_conf/ + dialplan/, booted in "
                 f"{s['boot_seconds']:.1f} s) hands each call to the engine (its own process) "
                 f"over FastAGI. {s['calls']} scripted callers were originated over AMI within "
                 "1 s on `Local/+19495551234@inbound`, each pressing 1 during the welcome "
                 "prompt and 2 during the next (steps `w1-d1-w1.5-d2`); prompts are espeak-ng "
                 "speech staged into the PBX's sounds folder. Records were read back from "
                 "SQLite by the uniqueid of each call's Local ;2 half.", "",
                 "| calls | originated | records | on the expected path (welcome > "
                 "has_business > unqualified, hangup) | peak concurrent in the engine | "
                 "mean call | engine CPU per call | Asterisk CPU per call |",
                 "|---|---|---|---|---|---|---|---|",
                 f"| {s['calls']} | {s['originated']} | {s['records']} | "
                 f"{s['expected_path']} | {s['peak_concurrent']} | "
                 f"{_n(s['mean_call_s'], '{:.1f} s')} | "
                 f"{s['engine_cpu_ms_per_call']:.2f} ms | "
                 f"{s['asterisk_cpu_ms_per_call']:.1f} ms |")
        if s["wrong"] or s["originate_errors"]:
            self.add("", f"Off the path: `{s['wrong']}`; originate errors: "
                     f"`{s['originate_errors']}`")
        self.target("concurrent IVR calls on the real Asterisk, all on the expected path",
                    f"{s['peak_concurrent']} concurrent, {s['expected_path']}/{s['calls']} "
                    "on path", "", "", ">= 100, all",
                    s["peak_concurrent"] >= 100 and s["expected_path"] == s["calls"])
        self.target("engine CPU per real call", f"{s['engine_cpu_ms_per_call']:.2f} ms",
                    "", "", "(reported)", None)
        self.add("")

    def sip(self, s: dict) -> None:
        share = s["expected_path"] / s["calls"] if s["calls"] else 0
        self.add("## 2b. Real SIP, real keys: SIPp callers on the trunk", "",
                 f"SIPp (Debian's sip-tester) plays the carrier: {s['calls']:,} callers at "
                 f"{s['rate']} per second from the carrier's identified address into our PBX "
                 "(the shipped asterisk_conf/ + dialplan/, SIP and RTP). Each caller "
                 "(bench/sipp/ivr_caller.xml) offers PCMU and telephone-event, presses 1 "
                 "3.5 s after the answer (as the 3.6 s welcome prompt ends: the caller has "
                 "heard what 1 is for) and 2 3.5 s later (as the 3.1 s next prompt ends) as "
                 "RFC 4733 events (sip-tester's own captures, `dtmf_2833_1.pcap`, "
                 "`dtmf_2833_2.pcap`), and waits for the IVR to hang up. It sends no other RTP: "
                 "SIPp's `-rtp_echo` sends the IVR's audio back under Asterisk's SSRC between "
                 "the captures' packets under another, a stream no carrier sends, and "
                 "Asterisk then counts a key's repeated end packets as a second press. The "
                 "expected path is "
                 "read from each call's record: welcome > has_business > unqualified, ended by "
                 "the IVR's hangup. CPU per call is each process's own (/proc) over the whole "
                 "run, divided by the calls recorded. Key press -> next prompt is measured at "
                 "the caller on loopback (bench/rtp_sniff.py: a kernel-filtered packet "
                 "capture): from the first end-of-event packet of the key (the press is over; "
                 "Asterisk acts on the end) to the first audio packet the caller received "
                 f"after it, for 1 call in {s['sample']} (by Asterisk's RTP port).", "",
                 "| callers | SIPp ok / failed | records | on the expected path | peak "
                 "concurrent (SIPp / engine) | mean call | Asterisk CPU per call | engine CPU "
                 "per call | engine ÷ Asterisk | key -> prompt p50 / p99 (presses) |",
                 "|---|---|---|---|---|---|---|---|---|---|",
                 f"| {s['calls']:,} at {s['rate']}/s | {s['sipp_ok']:,} / {s['sipp_failed']:,} "
                 f"| {s['records']:,} | {s['expected_path']:,} ({share:.1%}) | "
                 f"{s['sipp_peak']:,} / {s['peak_engine']:,} | "
                 f"{_n(s['mean_call_s'], '{:.1f} s')} | "
                 f"{s['asterisk_cpu_ms_per_call']:.1f} ms | "
                 f"{s['engine_cpu_ms_per_call']:.2f} ms | "
                 f"{_x(s['engine_cpu_ms_per_call'], s['asterisk_cpu_ms_per_call'])} | "
                 f"{_ms(s['key_to_prompt_p50_ms'])} / {_ms(s['key_to_prompt_p99_ms'])} "
                 f"({s['presses_measured']}) |")
        if s["wrong"] or s["sipp_tail"]:
            self.add("", f"Off the path: `{s['wrong']}`")
            for way, steps in s.get("wrong_examples", {}).items():
                self.add("", f"- one call that went `{way}`: {steps}")
            if s["sipp_tail"]:
                self.add("", "```", s["sipp_tail"], "```")
        self.add("", "Keys and questions: the engine asks each gather's prompt and the "
                 "wait for its first key as one AGI command (`GET OPTION`), so a key pressed "
                 "as the prompt ends, where these callers press, is read by Asterisk inside "
                 "the command. Before, the engine asked it as two commands (STREAM FILE, "
                 "then WAIT FOR DIGIT); res_agi reads and drops a caller's keys between "
                 "commands, and that gap, one round trip through the engine, grew to seconds "
                 "with the machine short of CPU: 689/1,000 callers stayed on the path in the "
                 "run before the change, all others having lost their 2 there (Asterisk's "
                 "DTMF log, docs/operators.md section 4). The gap between ANSWER and the "
                 "first prompt remains: a caller whose first key comes before the engine's "
                 "first question has begun loses it. Off-path calls are listed above with "
                 "one call's steps each (`t` from the engine's start of the call).")
        self.target("SIP callers on the expected path (1 then 2, IVR hangs up)",
                    f"{s['expected_path']:,}/{s['calls']:,} ({share:.1%}), peak "
                    f"{s['sipp_peak']:,}", "", "", ">= 99.9%", share >= 0.999)
        self.target("engine CPU per SIP call vs Asterisk's",
                    f"{s['engine_cpu_ms_per_call']:.2f} ms",
                    f"{s['asterisk_cpu_ms_per_call']:.1f} ms",
                    _x(s["engine_cpu_ms_per_call"], s["asterisk_cpu_ms_per_call"]),
                    "<= 0.10x", s["engine_cpu_ms_per_call"]
                    <= 0.1 * s["asterisk_cpu_ms_per_call"])
        self.target("key press -> next prompt's first packet at the caller, p50 / p99",
                    f"{_ms(s['key_to_prompt_p50_ms'])} / {_ms(s['key_to_prompt_p99_ms'])}",
                    "", "", "(reported)", None)
        self.add("")

    def api(self, p: dict) -> None:
        g, w = p["get"], p["post"]
        self.add("## 3. Admin API under gunicorn vs a bare Flask app", "",
                 f"gunicorn with {p['workers']} gthread workers x {p['threads']} threads for "
                 f"both; wrk with {p['connections']} connections for 5 s a run. The bare app "
                 f"returns the {p['body_bytes']}-byte JSON trunx's `GET /ivr/:id` returned, "
                 "from memory, with no auth, database or Redis. `POST /ivr` creates a new IVR "
                 "per request (50 concurrent writers into one SQLite file). trunx's requests "
                 "are authenticated and counted against the account's rate limit (set too "
                 "high to refuse any). CPU per request is the gunicorn master's and "
                 "workers' CPU time over the run divided by the requests answered: unlike "
                 "the rates, it barely moves with what else the machine runs.", "",
                 "| request | trunx req/s | bare req/s | trunx ÷ bare | trunx p50 / p99 | "
                 "bare p50 / p99 | CPU per request (trunx / bare) | trunx non-2xx | "
                 "all runs (trunx / bare) |",
                 "|---|---|---|---|---|---|---|---|---|")
        for label, x in (("GET /ivr/:id", g), ("POST /ivr", w)):
            a, b = x["api"], x["bare"]
            cpu = (f"{a['cpu_ms']:.2f} / {b['cpu_ms']:.2f} ms" if "cpu_ms" in a and "cpu_ms" in b
                   else "")
            self.add(f"| {label} | {_n(a['requests_per_s'])} | {_n(b['requests_per_s'])} | "
                     f"{_x(a['requests_per_s'], b['requests_per_s'])} | "
                     f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms | "
                     f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms | {cpu} | "
                     f"{a['s4'] + a['s5'] + a['other']} (+{a['timeouts']} wrk timeouts) | "
                     f"{', '.join(_n(v) for v in a['all_rates'])} / "
                     f"{', '.join(_n(v) for v in b['all_rates'])} |")
        locked = w["api"]["locked"] + p["locked_in_log"]
        self.add("", f"\"database is locked\": {w['api']['locked']} in response bodies, "
                 f"{p['locked_in_log']} in gunicorn's log. IVRs stored by the write run: "
                 f"{p['ivrs_stored']:,} (acknowledged with 2xx: {w['api']['s2']:,}; wrk stops "
                 "counting at the deadline while the last requests still land).")
        self.target("GET /ivr/:id req/s vs bare Flask", _n(g["api"]["requests_per_s"]),
                    _n(g["bare"]["requests_per_s"]),
                    _x(g["api"]["requests_per_s"], g["bare"]["requests_per_s"]), ">= 0.8x",
                    g["api"]["requests_per_s"] >= 0.8 * g["bare"]["requests_per_s"])
        self.target("GET /ivr/:id p99", f"{g['api']['p99_ms']:.1f} ms",
                    f"{g['bare']['p99_ms']:.1f} ms", _x(g["api"]["p99_ms"],
                                                         g["bare"]["p99_ms"]),
                    "(reported)", None)
        self.target("POST /ivr req/s, p99", f"{_n(w['api']['requests_per_s'])}/s, "
                    f"{w['api']['p99_ms']:.0f} ms", f"{_n(w['bare']['requests_per_s'])}/s, "
                    f"{w['bare']['p99_ms']:.0f} ms",
                    _x(w["api"]["requests_per_s"], w["bare"]["requests_per_s"]),
                    ">= 0.5x", w["api"]["requests_per_s"] >= 0.5 * w["bare"]["requests_per_s"])
        self.target("\"database is locked\" with 50 concurrent writers", str(locked), "", "",
                    "0", locked == 0 and w["api"]["s5"] == 0)
        self.add("", *API_HOT_PATH)
        prof = p.get("profile")
        if prof:
            self.add("", "### Where a request's time goes (cProfile, Flask test client)", "",
                     "Cumulative time per request of trunx's own functions:", "",
                     "| GET /ivr/:id | ms | POST /ivr | ms |", "|---|---|---|---|")
            for (gf, gt), (pf, pt) in zip(prof["get"], prof["post"], strict=False):
                self.add(f"| `{gf}` | {gt * 1000:.2f} | `{pf}` | {pt * 1000:.2f} |")
        self.add("")

    def campaign(self, c: dict) -> None:
        whole = c["accepted"] == c["calls"] == c["queued"] == c["distinct_ids"]
        self.add("### A campaign's burst: POST /api/voice", "",
                 f"{c['calls']:,} `POST /api/voice` at once from {c['clients']} keep-alive "
                 "connections, the API under its shipped gunicorn settings (SQLite, Redis); "
                 "each call is a row and an entry on the originate stream. Placing them at "
                 "the paced rate, none twice, is the dialer's work (agi_server/ami/dialer.py) "
                 "and is not measured in this section: the pace and the accounts' turns are "
                 "tested on a real Asterisk in tests/integration/test_outbound_fairness.py, "
                 "the once-only guards (outbox mark, `originated` mark, `initiated` event) in "
                 "tests/integration/test_durable_emulated.py and test_fault_injection.py. "
                 "The calls a worker is given at once are stored in one transaction and "
                 "queued in one Redis round trip (trunx/group_commit.py); the queued-calls "
                 "quota is counted from the (account, status) index. The API's CPU is its "
                 "gunicorn master's and workers' CPU time over the burst, per call.", "",
                 "| requests | whole burst accepted in | p50 / p99 | API CPU per call | "
                 "answers | rows | queued | distinct ids |", "|---|---|---|---|---|---|---|---|",
                 f"| {c['calls']:,} | {c['burst_s']:.2f} s | {c['p50_ms']:.1f} / "
                 f"{c['p99_ms']:.1f} ms | "
                 + (f"{c['api_cpu_ms']:.2f} ms" if "api_cpu_ms" in c else "")
                 + f" | {c['statuses']} | {c['rows']:,} | {c['queued']:,} | "
                 f"{c['distinct_ids']:,} |", "")
        self.target(f"{c['calls']:,} POST /api/voice in a burst: accepted within 2 s, "
                    "p99 <= 50 ms, all queued once (placement: see above)",
                    f"{c['burst_s']:.2f} s, p99 {c['p99_ms']:.0f} ms, {c['queued']:,} "
                    f"queued, {c['distinct_ids']:,} distinct", "", "",
                    "<= 2 s, <= 50 ms, all", whole and c["burst_s"] <= 2
                    and c["p99_ms"] <= 50)

    def audio(self, s: dict) -> None:
        self.add("## 4. Audio: espeak-ng + sox + staging", "",
                 f"A {s['prompt_seconds']:.1f} s prompt. trunx: `render_tts(text, None, "
                 "\"standard\", None, config)` + `LocalStager(dir).put` on a cold cache (a new "
                 "data dir each round), and the same on a warm cache. Baseline: "
                 "`espeak-ng -w` then `sox` to 8 kHz mono s16, then a file copy, each a "
                 f"subprocess. Medians of {s['rounds']} cold rounds and {s['hits']} hits.", "",
                 "| | trunx | baseline | trunx ÷ baseline |", "|---|---|---|---|",
                 f"| cold: speak + transcode + stage | {s['cold_ms']:.1f} ms | "
                 f"{s['baseline_ms']:.1f} ms | {_x(s['cold_ms'], s['baseline_ms'])} |",
                 f"| cache hit (render_tts) | {s['hit_ms']:.2f} ms (p99 "
                 f"{s['hit_p99_ms']:.2f} ms) | | |",
                 f"| cache hit + stage | {s['hit_staged_ms']:.2f} ms | | |", "",
                 "trunx does more than the baseline on a miss: it checks the voice against "
                 "espeak-ng's list (cached), sniffs, writes to a temporary name, fsyncs and "
                 "renames, and measures the result.")
        self.target(f"TTS + transcode + stage of a {s['prompt_seconds']:.0f} s prompt",
                    f"{s['cold_ms']:.0f} ms", f"{s['baseline_ms']:.0f} ms",
                    _x(s["cold_ms"], s["baseline_ms"]), "<= 100 ms", s["cold_ms"] <= 100)
        self.target("TTS cache hit", f"{s['hit_ms']:.2f} ms", "", "", "<= 10 ms",
                    s["hit_ms"] <= 10)
        self.add("")
        n = s.get("neural") or {}
        if "neural" in n:
            p, e = n["neural"], n["standard"]
            self.add("### The neural voice without a key (Piper) next to espeak-ng", "",
                     "Cold cache, the Piper worker already running (its start, loading the "
                     f"voice, took {n['worker_start_ms']:.0f} ms once). First audio: "
                     "`stream_tts`, sentence by sentence, until the first sentence's 8 kHz "
                     f"file is ready. Medians of {n['rounds']} rounds.", "",
                     "| | neural (Piper) | standard (espeak-ng) |", "|---|---|---|",
                     f"| speech length of the prompt | {p['prompt_seconds']:.1f} s | "
                     f"{e['prompt_seconds']:.1f} s |",
                     f"| render the whole prompt | {p['render_ms']:.0f} ms | "
                     f"{e['render_ms']:.0f} ms |",
                     f"| first audio (live speak) | {p['first_audio_ms']:.0f} ms | "
                     f"{e['first_audio_ms']:.0f} ms |", "")
            # the prompt's text is 10 s as espeak-ng speaks it; Piper speaks it a little
            # faster, so its render time is also given per 10 s of its own speech
            per10 = p["render_ms"] * 10 / p["prompt_seconds"] if p["prompt_seconds"] else None
            self.target("neural voice (Piper): render a 10 s prompt, on this machine's "
                        f"{self.r['machine']['nproc']} cores",
                        f"{p['render_ms']:.0f} ms for {p['prompt_seconds']:.1f} s of speech "
                        f"({_n(per10)} ms per 10 s)", f"{e['render_ms']:.0f} ms (espeak-ng)",
                        "", "<= 1500 ms", per10 is not None and per10 <= 1500)
            self.target("neural voice: first audio of a live speak",
                        f"{p['first_audio_ms']:.0f} ms", "", "", "<= 1000 ms",
                        p["first_audio_ms"] <= 1000)
            self.add("")

    def amd(self, s: dict) -> None:
        t, b = s["trunx"], s["baseline"]
        self.add("## 5. Answering-machine detection: hundreds of calls listened to at once", "",
                 f"{s['calls']} AudioSocket peers (a client process) stream 20 ms frames of "
                 f"answer-like audio (speech-like bursts, pauses, a beep) for {s['seconds']:.0f} "
                 "s to the engine's AudioSocketServer on uvloop. trunx: each frame fed to the "
                 "detector, as a live call does. Baseline: the same server, frames dropped "
                 "(what receiving the audio costs). CPU of the serving process only; loop lag "
                 "is a 10 ms timer's overshoot while the calls stream.", "",
                 "The detector's filter bank (the Goertzel matrix, 230 KB) is one per band, "
                 "shared by every call: with a copy in each of 300 detectors the caches "
                 "spilled, and the cost per frame was half as much again (`--only amd "
                 "--quick`: 60.0 -> 40.6 µs a frame, 88% -> 60% of a core). The noise "
                 "floor is a sliding minimum, O(1) a frame.", "",
                 "| | trunx (detector) | baseline (receive only) | trunx ÷ baseline |",
                 "|---|---|---|---|",
                 f"| CPU per 20 ms frame | {t['cpu_per_frame_us']:.1f} µs | "
                 f"{b['cpu_per_frame_us']:.1f} µs | "
                 f"{_x(t['cpu_per_frame_us'], b['cpu_per_frame_us'])} |",
                 f"| share of a core, {s['calls']} calls | {t['core_share']:.0%} | "
                 f"{b['core_share']:.0%} | |",
                 f"| loop lag p99 (max) | {t['lag_p99_ms']:.1f} ms ({t['lag_max_ms']:.0f}) | "
                 f"{b['lag_p99_ms']:.1f} ms ({b['lag_max_ms']:.0f}) | |",
                 f"| frames received | {t['frames']:,} | {b['frames']:,} | |", "")
        self.target(f"AMD: {s['calls']} calls listened to at once", f"{t['core_share']:.0%} "
                    "of a core", f"{b['core_share']:.0%}", "", "< 100% of a core, loop lag "
                    "p99 < 50 ms", t["core_share"] < 1.0 and t["lag_p99_ms"] < 50)

    def db(self, d: dict) -> None:
        sq, pg = d["backends"]["sqlite"], d["backends"]["postgresql"]
        self.add("## 4b. The admin API on SQLite and on PostgreSQL", "",
                 "The same API (gunicorn, shipped settings; wrk with 50 connections for "
                 f"{d['seconds']:.0f} s a run) on SQLite (WAL, the shipped pragmas) and on "
                 f"PostgreSQL {d['postgresql_version']} on this machine (a throw-away cluster "
                 "on loopback TCP with fsync off, as the tests run it; a pool of connections "
                 "per worker). `POST /ivr` creates an IVR per request under the writer lock "
                 "(flock on SQLite, an advisory lock on PostgreSQL); `POST /api/voice` stores "
                 "a call row and queues it.", "",
                 "| request | SQLite req/s | PostgreSQL req/s | PostgreSQL ÷ SQLite | "
                 "SQLite p50 / p99 | PostgreSQL p50 / p99 | non-2xx (SQLite / PostgreSQL) |",
                 "|---|---|---|---|---|---|---|")
        for label in ("GET /ivr/:id", "POST /ivr", "POST /api/voice"):
            a, b = sq[label], pg[label]
            self.add(f"| {label} | {_n(a['requests_per_s'])} | {_n(b['requests_per_s'])} | "
                     f"{_x(b['requests_per_s'], a['requests_per_s'])} | "
                     f"{a['p50_ms']:.1f} / {a['p99_ms']:.1f} ms | "
                     f"{b['p50_ms']:.1f} / {b['p99_ms']:.1f} ms | "
                     f"{a['requests'] - a['s2']} / {b['requests'] - b['s2']} |")
        self.add("", f"Stored by the write runs: SQLite {sq['ivrs_stored']:,} IVRs and "
                 f"{sq['calls_stored']:,} calls, PostgreSQL {pg['ivrs_stored']:,} IVRs and "
                 f"{pg['calls_stored']:,} calls (wrk stops counting at the deadline while the "
                 "last requests still land).", "")
        bad = sum(x[label]["requests"] - x[label]["s2"] for x in (sq, pg)
                  for label in ("GET /ivr/:id", "POST /ivr", "POST /api/voice"))
        self.target("API on PostgreSQL: GET /ivr/:id, POST /ivr, POST /api/voice req/s",
                    " / ".join(_n(pg[x]["requests_per_s"]) for x in
                               ("GET /ivr/:id", "POST /ivr", "POST /api/voice")),
                    " / ".join(_n(sq[x]["requests_per_s"]) for x in
                               ("GET /ivr/:id", "POST /ivr", "POST /api/voice")) + " (SQLite)",
                    "", "every request 2xx", bad == 0)

    # -- the page ---------------------------------------------------------------------
    def stats(self, s: dict) -> None:
        self.add("## 5. Per-node IVR stats (GET /ivr/:id/stats)", "",
                 "Generated histories of inbound calls through one menu (random walks through "
                 "the engine's state machine, one call a second) in a SQLite file, written as "
                 "the engine writes its records (each call's visit rows in its transaction), "
                 f"beside {s['other_calls']:,} calls of another IVR. Timed: the whole request "
                 "through the Flask test client, the first stats request after the history was "
                 "written (the worker having answered one GET /ivr/:id), "
                 f"then the median of {s['repeat']} more. trunx sums the IVR's visit rows in "
                 "SQL over covering indexes (trunx/ivr/stats.py); it reads no path and keeps "
                 "no cache, so the first request costs what the others do. Baseline: a bare "
                 "Flask route answering one COUNT of the IVR's calls through the Call index, "
                 "on the same file, timed the same way.", "",
                 "CPU: this process's CPU time for the request (the test client runs it "
                 "in-process), much less affected by other load on the machine.", "",
                 "| calls of the IVR | | first request | then | first, CPU | then, CPU "
                 "| a one-hour window, then |",
                 "|---|---|---|---|---|---|---|")
        for row in s["rows"]:
            a, h, ba, bh = row["all"], row["hour"], row["base_all"], row["base_hour"]
            self.add(f"| {row['calls']:,} | trunx | {a['first']:.1f} ms | {a['then']:.1f} ms "
                     f"| {a['first_cpu']:.1f} ms | {a['then_cpu']:.1f} ms | "
                     f"{h['then']:.1f} ms |",
                     f"| | bare COUNT | {ba['first']:.1f} ms | {ba['then']:.1f} ms | "
                     f"{ba['first_cpu']:.1f} ms | {ba['then_cpu']:.1f} ms | "
                     f"{bh['then']:.1f} ms |",
                     f"| | trunx ÷ baseline | {_x(a['first'], ba['first'])} | "
                     f"{_x(a['then'], ba['then'])} | {_x(a['first_cpu'], ba['first_cpu'])} | "
                     f"{_x(a['then_cpu'], ba['then_cpu'])} | {_x(h['then'], bh['then'])} |")
        self.add("")
        row = s["rows"][0]
        for label, key in (("first request", "first"), ("then", "then")):
            ours, theirs = row["all"][key], row["base_all"][key]
            self.target(f"stats over {row['calls']:,} calls, {label}", f"{ours:.0f} ms "
                        f"(CPU {row['all'][key + '_cpu']:.0f} ms)", f"{theirs:.1f} ms",
                        _x(ours, theirs), "<= 100 ms", ours <= 100)

    def render(self) -> str:
        r = self.r
        m = r["machine"]
        for name in ("agi", "asterisk", "sip", "api", "db", "campaign", "audio", "amd", "stats"):
            if name in r["sections"]:
                getattr(self, name)(r["sections"][name])
            elif name in r["failed"]:
                self.add(f"## {name}: FAILED", "", "```", r["failed"][name][-3000:], "```", "")
        body, self.lines = self.lines, []
        load = r["load"]
        self.target("the whole bench (`make bench`)", f"{r['seconds']:.0f} s", "", "",
                    "< 600 s", r["seconds"] < 600)
        v = m["versions"]
        self.add("# Benchmarks", "",
                 f"Generated by `make bench` (`python -m bench`) on "
                 f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in "
                 f"{r['seconds']:.0f} s; do not edit by hand. Ratios are trunx ÷ baseline: "
                 "above 1 is better for rates, below 1 is better for times and sizes.", "",
                 "## Machine", "",
                 f"- {m['nproc']} cores ({m['cpu']}), {m['memory_gib']:.1f} GiB memory, "
                 f"Linux {m['kernel']}; open files limit raised to {m['nofile']:,} in every "
                 "bench process",
                 f"- Python {v['python']}; {v['asterisk']}; {v['redis']}; panoramisk "
                 f"{v['panoramisk']}; Flask {v['flask']}; gunicorn {v['gunicorn']}; peewee "
                 f"{v['peewee']}; redis-py {v['redis-py']}; {v['espeak-ng']}; {v['sox']}; "
                 f"{v['wrk']}",
                 f"- Load from outside the bench while it ran: other processes used "
                 f"{load['others_share']:.0%} of the machine's CPU ({load['others_cpu_s']:.0f} "
                 "CPU-seconds). When that is not near 0 the rates below are lower than this "
                 "machine can do; the CPU-per-call figures are much less affected.", "",
                 "## Targets", "",
                 "| figure | trunx | baseline | trunx ÷ baseline | target | |",
                 "|---|---|---|---|---|---|")
        self.add(*(f"| {' | '.join(str(c) for c in t)} |" for t in self.targets))
        self.add("")
        return "\n".join(self.lines + body) + "\n"
