"""The small web page for people: open investigations, their anomalies and charts."""
