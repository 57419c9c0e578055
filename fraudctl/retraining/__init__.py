"""Retraining on Airflow: the `fraud_retrain` DAG's steps, and triggering and following its runs."""
