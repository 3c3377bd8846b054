"""Tests of `sensors`."""
