"""Tests of the linearizability checker in ``replobj.testing``."""
