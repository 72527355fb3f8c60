"""Relief: emergency temporary assistance at the place of hardship, approvals and a payment ledger."""
