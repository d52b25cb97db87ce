"""Live polls and the personalised offers they can carry (issue 7, ADR 0013). No Ray here."""
