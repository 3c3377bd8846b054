"""Assets by domain: ingestion and training (serving and monitoring join them later)."""
