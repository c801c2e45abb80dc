"""HTTP interface: thin routes over the application service (domain.application)."""
