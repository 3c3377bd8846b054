"""Tests of `lib`."""
