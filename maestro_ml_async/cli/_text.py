"""Make text from servers and jobs safe to show on a terminal."""

from __future__ import annotations

import re

__all__ = ["printable"]

# C0 controls other than tab and newline, DEL, and the C1 controls. ESC
# (0x1b) among them starts the ANSI sequences that move the cursor, recolor
# the terminal or set its title, so a server's message must not send them raw.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str, *, one_line: bool = False) -> str:
    """Return `text` with control characters shown as ``\\xNN`` escapes.

    Args:
        text: Text that came from a server, a job or another program.
        one_line: Also join the lines, and collapse each run of whitespace
            into one space.
    """
    if one_line:
        text = " ".join(text.split())
    return _CONTROL.sub(_escape, text)
