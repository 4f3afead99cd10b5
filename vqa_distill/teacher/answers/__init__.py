"""Asking many requests and keeping what came back: the bounded fan-out and the record each outcome becomes."""
