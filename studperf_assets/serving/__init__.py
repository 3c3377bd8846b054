"""Local stand-ins for AWS plumbing: a Kinesis poller that drives the Lambda handler, the moto
server, simulated traffic with its label files, the per-batch stream report, and the
supervisor that keeps ``studperf up``'s processes alive (and cleans them up)."""
