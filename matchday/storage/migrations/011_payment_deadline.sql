-- A payment deadline per order (issue 13, item 7; ADR 0008 addendum).
--
-- An order whose gateway stayed down was left payment_pending for good, while its holds
-- expired and its units went back on sale. pay_by is set when its first charge begins (now
-- plus MATCHDAY_PAYMENT_HOLD_S, the time its holds are extended by); an order still in
-- flight then fails as payment_timeout, unless a capture was claimed for it first.
ALTER TABLE orders ADD COLUMN pay_by timestamptz;
CREATE INDEX orders_by_deadline ON orders (pay_by)
    WHERE status IN ('pending_payment', 'payment_pending', 'requires_action');

-- The sweep also looks at attempts left waiting on the customer's bank (3-D Secure) of
-- orders that settled without them: a confirmation that comes later is an authorisation
-- to cancel.
DROP INDEX IF EXISTS payment_attempts_open;
CREATE INDEX payment_attempts_open ON payment_attempts (updated_at)
    WHERE status IN ('started', 'requires_capture', 'requires_action', 'unknown');

-- Orders that ended without a sale for a reason operators are alerted on (the worker's
-- metrics sampler counts the last hour's every few seconds: an index, not a scan).
CREATE INDEX orders_ended_unpaid ON orders (updated_at)
    WHERE failure_code IN ('payment_timeout', 'hold_lost', 'sold_out_refunded', 'partly_refunded');
