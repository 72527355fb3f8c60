"""Router: one-door acceptance, coordinated handling; dispatches cases to department queues."""
