"""Hotline tests: unit (domain), component (TestKafkaBroker + real store), integration (real Kafka)."""
