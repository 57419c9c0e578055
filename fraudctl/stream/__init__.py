"""The streaming scorer's core, free of Spark: decode and check events, keep the online feature state,
score with the champion, publish scores, alerts and dead letters, write the lake.

`jobs/scorer.py` is the Spark Structured Streaming job that feeds it one micro-batch at a time
(`Scorer.process`); everything here is plain Python over pandas/pyarrow so it is tested without Spark.
"""
