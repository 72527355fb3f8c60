"""Relief rules as pure functions of plain data (no I/O): standards, case rules (P5.2a-d, P5.1), the
entitlement lifecycle, P5.2a's monthly schedule, the registry import (P2.3) and subsidy runs (P1.3, P2.1)."""
