"""Backends: a table of printed names (in ``lossdsl.builtins``) plus a runtime of small helpers
that generated modules copy in, so that each module imports only its array library."""
