"""Read side: SQL views built from the event log, one module per question."""
