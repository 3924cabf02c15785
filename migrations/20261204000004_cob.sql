-- Business dates and close of business (SPEC §12). DDL auto-commits, so this migration is not
-- atomic: each statement below is whole on its own.

-- Closed business dates (Asia/Jakarta calendar dates). A date is closed once its row exists;
-- closed dates are never reopened.
CREATE TABLE business_dates (
    business_date  DATE NOT NULL,
    closed_at      DATETIME(6) NOT NULL,
    PRIMARY KEY (business_date)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- overdue_since: the first business date whose COB found the installment overdue.
-- cob_through: the last business date COB processed the installment for, so a rerun of a
-- half-done date skips the rows it already did. The key serves a date's scan by due date.
ALTER TABLE monthly_billings
    ADD COLUMN overdue_since DATE NULL AFTER denda_terbayar,
    ADD COLUMN cob_through   DATE NULL AFTER overdue_since,
    ADD KEY monthly_billings_due (tanggal_tagihan, billing_id);
