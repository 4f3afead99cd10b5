"""The HTTP routes of the offline teacher: chat completions, models, admin, and its middleware."""
