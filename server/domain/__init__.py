"""Plain objects and rules of the loan-tablet fleet; no I/O, no frameworks."""
