"""gridwatch cloud tier: ingest, series storage, incidents, fleet, API and live view."""
