"""Small helpers shared by every layer (atomic writes, logging set-up)."""
