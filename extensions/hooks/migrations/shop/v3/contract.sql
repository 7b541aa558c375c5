-- Only once no colour runs v2 any more: the old column goes.
ALTER TABLE orders DROP COLUMN total;
