"""Small helpers shared by every stage: atomic file writes, JSONL with located errors, config base."""
