"""The ``otpctl`` console script, before anything heavy is loaded.

Loading click, SQLAlchemy and the commands takes most of a second; Ctrl-C in that time would
otherwise end in a traceback rather than in the one line and status 130 it gets later.
"""

from __future__ import annotations

import sys

INTERRUPTED = "interrupted (Ctrl-C, or standard input closed at a prompt)"


def main() -> None:
    """Console-script entry point ``otpctl``."""
    try:
        from cli.main import main as run_otpctl
    except KeyboardInterrupt:
        print(f"otpctl: error: {INTERRUPTED}", file=sys.stderr)
        raise SystemExit(130) from None
    run_otpctl()


if __name__ == "__main__":
    main()
