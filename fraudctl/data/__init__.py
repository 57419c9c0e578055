"""Data in and at rest: the transaction simulator, input layouts, replay into Kafka, and the lake the scorer
appends to and training reads."""
