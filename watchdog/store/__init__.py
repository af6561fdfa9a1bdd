"""Durable state: incidents, the decision audit trail, actions, rollbacks, human events."""
