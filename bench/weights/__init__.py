"""Provisioned metric weights: the table of what exists (``table``), the store (``store``) and the
converters (``convert``, referenced lazily by name)."""
