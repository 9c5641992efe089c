"""The alert webhook receiver: authenticate, validate, route, write to a durable outbox, answer 202;
a dispatcher drains the outbox into Prefect deployment runs."""
