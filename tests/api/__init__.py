"""Unit tests of the pure API layer: decorator, command payloads, sessions, state machine."""
