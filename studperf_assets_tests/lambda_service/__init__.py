"""Tests of `lambda_service`."""
