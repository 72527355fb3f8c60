"""Notify: SLA clocks, warnings, escalations and the coordinators' view of overdue cases."""
