"""Rules as data: life-safety triage keywords."""
