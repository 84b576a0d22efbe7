"""NMEA 0183 byte stream in (split anywhere between feeds), candidate `$...` sentence lines out.

A sentence runs from `$` to the first CR or LF. A `$` before the line ends restarts the sentence
(resync: the interrupted bytes are junk; `$$` collapses to one `$` without counting junk). Bytes outside
a sentence other than line endings are junk. A sentence longer than the cap is dropped whole, and
scanning resumes at the next `$`. Binary bytes inside a line are rejected later by the sentence parser.
"""

from __future__ import annotations

from collections import Counter

_WHITESPACE = b"\r\n\t "


class NmeaFramer:
    """Cut a byte stream into sentence lines; counts `junk_bytes` and `too_long` in `counts`."""

    def __init__(self, max_sentence_bytes: int = 512) -> None:
        self.max_sentence_bytes = max_sentence_bytes
        self.counts: Counter[str] = Counter()
        self._buf = b""
        # True while dropping the rest of an over-long sentence up to its line end or next `$`.
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        """Consume `data`; return the complete lines it ends, each starting with `$`, without terminator."""
        buf = self._buf + data if self._buf else data
        self._buf = b""
        *lines, tail = buf.split(b"\n")
        out: list[bytes] = []
        cap = self.max_sentence_bytes
        if self._skipping and lines:
            # The rest of an over-long sentence runs up to the first line end (or `$`): the scanner drops it.
            # Every complete line ends the skip, so the lines after it start fresh.
            self._scan(lines.pop(0) + b"\n", out)
        for line in lines:
            # The common case costs a few C calls: one `$`, printable up to an optional CR, within the cap.
            # Anything else (junk, a resync, CR inside, an over-long or interrupted line) takes the scanner,
            # which sees the line with its LF exactly as it would in the whole stream.
            if line[:1] == b"$" and line.find(b"$", 1) < 0:
                cr = line.find(b"\r")
                if cr < 0 and len(line) <= cap:
                    out.append(line)
                    continue
                if cr == len(line) - 1 and cr <= cap:
                    out.append(line[:cr])
                    continue
            if line and line != b"\r":
                self._scan(line + b"\n", out)
        if tail:
            self._scan(tail, out)
        return out

    def _scan(self, buf: bytes, out: list[bytes]) -> None:
        """Cut `buf` byte by byte into `out`, counting junk; keep an incomplete sentence for the next feed."""
        cap = self.max_sentence_bytes
        pos = 0
        n = len(buf)
        junk = 0
        while pos < n:
            start = buf.find(b"$", pos)
            if self._skipping:
                stop = _line_end(buf, pos, n if start < 0 else start)
                if stop < 0 and start < 0:
                    pos = n
                    break
                self._skipping = False
                pos = start if stop < 0 else stop
                continue
            if start < 0:
                junk += _junk(buf[pos:])
                pos = n
                break
            if start > pos:
                junk += _junk(buf[pos:start])
            limit = min(n, start + cap + 1)
            end = _line_end(buf, start, limit)
            nxt = buf.find(b"$", start + 1, limit if end < 0 else end)
            if nxt >= 0:
                if nxt > start + 1:  # `$$` is a doubled start, not junk
                    junk += nxt - start
                pos = nxt
                continue
            if end < 0:
                if limit - start > cap:
                    self.counts["too_long"] += 1
                    self._skipping = True
                    pos = limit
                    continue
                pos = start
                break  # incomplete: wait for more bytes
            out.append(buf[start:end])
            pos = end + 1
        self._buf = buf[pos:] if pos < n else b""
        if junk:
            self.counts["junk_bytes"] += junk


def _line_end(buf: bytes, start: int, limit: int) -> int:
    lf = buf.find(b"\n", start, limit)
    cr = buf.find(b"\r", start, limit if lf < 0 else lf)
    return cr if cr >= 0 else lf


def _junk(chunk: bytes) -> int:
    return len(chunk.translate(None, _WHITESPACE))
