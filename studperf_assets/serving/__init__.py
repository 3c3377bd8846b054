"""Local stand-ins for AWS plumbing: a Kinesis poller that drives the Lambda handler."""
