"""Pure logic, free of Dagster wiring: data rules, models, export and bundle building."""
