"""One teacher run: its plan, its live objects, its progress and cost, its summary and how it ends."""
