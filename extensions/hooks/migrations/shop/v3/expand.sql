-- v3 stores amounts in cents; v2 (still live while v3 rolls out) reads and writes "total".
ALTER TABLE orders ADD COLUMN total_cents INTEGER;
UPDATE orders SET total_cents = CAST(ROUND(total * 100) AS INTEGER) WHERE total_cents IS NULL;
