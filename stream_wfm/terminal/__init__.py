"""Terminal output shared by the commands, the demo and the bench (no dependency on them)."""
