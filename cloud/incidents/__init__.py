"""Governance incidents: alerts and liveness events in; cases (案卷) with deadlines, audit and KPIs out."""
