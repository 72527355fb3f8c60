"""Relief rules as pure functions (P5.2a–d, P5.1, P1.3, P2.1); filled in by the relief work."""
