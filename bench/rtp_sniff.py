"""RTP as the caller receives it, captured on loopback: when each RFC 4733 key press ended
and when the next packet of the IVR's audio reached the caller.

An AF_PACKET socket on `lo` (root only), with a kernel filter compiled by libpcap (the
library SIPp is built with) so only the packets that matter reach Python: RTP to the
caller's media port, and RTP events (payload type 101) to Asterisk. A call is told apart
by Asterisk's RTP port (one per call). Loopback shows each packet twice (sent, received):
only the received copy is kept. `sample` keeps 1 call in `sample` (by Asterisk's port), so
a 1,000-call run costs Python a few thousand packets a second, not 50,000.
"""
from __future__ import annotations

import bisect
import ctypes
import ctypes.util
import socket
import struct
import threading
import time
from array import array
from collections import defaultdict

ETH_P_ALL, SO_ATTACH_FILTER, PACKET_HOST = 0x0003, 26, 0
EVENT_PT = 101          # telephone-event as the SIPp scenario offers it


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.c_void_p)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _compile(expression: str) -> tuple[bytes, int]:
    """The expression as classic BPF (libpcap's pcap_compile on an Ethernet link)."""
    lib = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
    lib.pcap_open_dead.restype = ctypes.c_void_p
    handle = lib.pcap_open_dead(1, 256)          # DLT_EN10MB: lo's frames as AF_PACKET sees them
    program = _BpfProgram()
    if lib.pcap_compile(ctypes.c_void_p(handle), ctypes.byref(program),
                        expression.encode(), 1, 0xFFFFFFFF) != 0:
        raise RuntimeError(f"libpcap could not compile {expression!r}")
    code = ctypes.string_at(program.bf_insns, program.bf_len * 8)
    count = program.bf_len
    lib.pcap_freecode(ctypes.byref(program))
    lib.pcap_close(ctypes.c_void_p(handle))
    return code, count


class RtpSniffer:
    def __init__(self, caller_media_port: int, rtp_start: int, rtp_end: int, sample: int = 1):
        self.port = caller_media_port
        # Asterisk's RTP ports are even; sampling keeps ports whose (port / 2) % sample == 0
        keep = "" if sample <= 1 else f" and (({{p}} / 2) % {sample}) = 0"
        to_caller = (f"(udp dst port {caller_media_port} and udp src portrange "
                     f"{rtp_start}-{rtp_end}{keep.format(p='udp[0:2]')})")
        events = (f"(udp dst portrange {rtp_start}-{rtp_end} and (udp[9] & 0x7f) = "
                  f"{EVENT_PT}{keep.format(p='udp[2:2]')})")
        self.expression = f"{to_caller} or {events}"
        self.audio: dict[int, array] = defaultdict(lambda: array("d"))   # port -> times
        self.events: dict[int, list] = defaultdict(list)    # port -> (time, event, end)
        self.packets = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = False

    def __enter__(self) -> RtpSniffer:
        code, count = _compile(self.expression)
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        buf = ctypes.create_string_buffer(code)
        prog = _SockFprog(count, ctypes.addressof(buf))
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(prog))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 2**20)
        sock.bind(("lo", 0))
        sock.settimeout(0.2)
        self._sock, self._buf = sock, buf
        self._thread = threading.Thread(target=self._run, name="rtp-sniff", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop = True
        self._thread.join()
        self._sock.close()

    def _run(self) -> None:
        sock, port = self._sock, self.port
        while not self._stop:
            try:
                data, addr = sock.recvfrom(128)
            except TimeoutError:
                continue
            now = time.monotonic()
            if addr[2] != PACKET_HOST:
                continue
            self.packets += 1
            ip = 14
            udp = ip + (data[ip] & 0x0F) * 4
            src, dst = struct.unpack_from("!HH", data, udp)
            rtp = udp + 8
            if dst == port:
                self.audio[src].append(now)
            elif len(data) >= rtp + 14:
                event, flags = data[rtp + 12], data[rtp + 13]
                self.events[dst].append((now, event, bool(flags & 0x80)))

    def key_to_prompt(self, digits: str) -> list[dict]:
        """Per call and key: from the key's first end-of-event packet (the press is over:
        Asterisk acts on the end) to the first audio packet the caller got after it."""
        out = []
        for port, events in self.events.items():
            times = self.audio.get(port)
            for digit in digits:
                ends = [t for t, e, end in events if end and e == int(digit)]
                if not ends or not times:
                    continue
                i = bisect.bisect_right(times, ends[0])
                out.append({"port": port, "digit": digit,
                            "ms": (times[i] - ends[0]) * 1000 if i < len(times) else None})
        return out
