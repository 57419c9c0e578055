"""Rules beside the model: the condition language, rules and rule sets, their history and store."""
