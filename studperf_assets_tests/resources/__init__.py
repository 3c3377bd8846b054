"""Tests of `resources`."""
