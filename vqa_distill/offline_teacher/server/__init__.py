"""What the routes share: settings, state, the record of requests received, and the injected faults."""
