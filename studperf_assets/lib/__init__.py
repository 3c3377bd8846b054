"""Logic free of Dagster wiring (no ``dagster`` import; ``test_layout.py`` holds it): data
rules and the CSV reader, models, ONNX export, bundle building and the MLflow model, batch
scoring, drift verdicts and their summary, references, label files and their joins, incidents,
alert e-mails, simulated drift and the training row cap. Storage is reached only through what
callers hand in (a store, a folder); schemas, locks and databases live in ``resources``."""
