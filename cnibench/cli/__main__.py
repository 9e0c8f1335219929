"""``python -m cnibench.cli`` = the ``cnibench`` command (usable without the entry point)."""

import signal
import sys

# a shell starts background jobs with SIGINT ignored; the lab must stop (and clean up) on it
signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    from cnibench.cli import app
except KeyboardInterrupt:  # Ctrl-C while importing: nothing was created yet
    sys.exit(130)

if __name__ == "__main__":
    app()
