-- docker-compose: one database per service (Dagster's is made by POSTGRES_DB).
CREATE DATABASE mlflow OWNER studperf;
CREATE DATABASE monitoring OWNER studperf;
