"""The model: estimators, time-ordered training, the MLflow registry (aliases, the promotion gate) and the
workflows that train, compare, promote and roll back."""
