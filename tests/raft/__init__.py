"""Unit tests of the pure Raft core, one rule of the paper or thesis per test."""
