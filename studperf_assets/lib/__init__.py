"""Pure logic, free of Dagster wiring: data rules, models, ONNX export, bundle building and
the MLflow model, batch scoring, drift verdicts and their summary, label joins, alert e-mails,
the Evidently dashboard, and simulated drift."""
