"""Run the gridwatch command line as `python -m gridwatch`."""

from gridwatch.cli import app

app()
