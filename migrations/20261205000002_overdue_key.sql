-- The USER_OVERDUE check (SPEC §12) asks, once per worker batch, which of the batch's buyers
-- have an overdue installment. On the user key alone it read every installment of every buyer
-- (about 130 rows per buyer in a benchmark's book, growing with it); on this key it reads only
-- the overdue ones, which are few: one index dive per buyer.
ALTER TABLE monthly_billings
    ADD KEY monthly_billings_user_overdue (user_id, overdue_since);
