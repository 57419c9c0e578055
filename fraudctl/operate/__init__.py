"""What an operator runs and looks at: the scorer as a service (start, stop, status, summary) and the stack's
overview. The only package that ties the stack (runtimes) to the stages."""
