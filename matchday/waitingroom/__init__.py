"""The waiting room for drops (issue 16, ADR 0026): tickets by arrival, admission at a rate
within the stock's headroom, short-lived passes that the drop's SKUs require."""
