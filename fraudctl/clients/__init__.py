"""One narrow client per external system (Kafka, Airflow, Flower, PostgreSQL, Redis, S3, Spark, Maven's jars),
built from a config section and the secrets it is handed: no client knows which runtime runs the stack."""
