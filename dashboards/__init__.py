"""Grafana dashboards (generated JSON) and alert queries."""
