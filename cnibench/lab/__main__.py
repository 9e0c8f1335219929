"""``python -m cnibench.lab`` = ``cnibench lab`` (usable before/without the main CLI)."""

import signal
import sys

# a shell starts background jobs with SIGINT ignored; the lab must stop (and clean up) on it
signal.signal(signal.SIGINT, signal.default_int_handler)

try:
    import typer

    from cnibench.lab.cli import lab
except KeyboardInterrupt:  # Ctrl-C while importing: nothing was created yet
    sys.exit(130)

app = typer.Typer(add_completion=False)
app.command()(lab)

if __name__ == "__main__":
    app()
