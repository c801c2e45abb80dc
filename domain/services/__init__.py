"""The application services: one small service per capability, composed, sharing one
unit of work (``domain.services.uow``). ``yingke.bootstrap`` builds and wires them."""
