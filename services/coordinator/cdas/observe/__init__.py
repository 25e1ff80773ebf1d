"""What the coordinator shows of itself: Prometheus metrics and the built-in dashboard page."""
