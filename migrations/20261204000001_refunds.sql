-- Refunds and cancellation (SPEC §9). DDL auto-commits, so this migration is not atomic:
-- each statement below is whole on its own.

-- What refunds cancelled of each installment, and its late fees (§12; 0 until they are
-- charged). An installment's unpaid part is harga_cicilan - terbayar - dibatalkan.
ALTER TABLE monthly_billings
    ADD COLUMN dibatalkan      DECIMAL(20,2) NOT NULL DEFAULT 0 AFTER terbayar,
    ADD COLUMN denda           DECIMAL(20,2) NOT NULL DEFAULT 0 AFTER dibatalkan,
    ADD COLUMN denda_terbayar  DECIMAL(20,2) NOT NULL DEFAULT 0 AFTER denda,
    DROP CONSTRAINT monthly_billings_paid_range,
    ADD CONSTRAINT monthly_billings_settled_range
        CHECK (terbayar >= 0 AND dibatalkan >= 0 AND terbayar + dibatalkan <= harga_cicilan),
    ADD CONSTRAINT monthly_billings_fee_range
        CHECK (denda >= 0 AND denda_terbayar >= 0 AND denda_terbayar <= denda);

-- Σ approved refunds of the contract: what is still refundable is jumlah_cicilan - total_refund.
ALTER TABLE transactions
    ADD COLUMN total_refund DECIMAL(20,2) NOT NULL DEFAULT 0 AFTER terbayar,
    ADD CONSTRAINT transactions_refund_range CHECK (total_refund >= 0 AND total_refund <= jumlah_cicilan);

-- Refunds. alokasi is the JSON list of (billing_id, jumlah), last installment first.
CREATE TABLE refunds (
    kode_refund               VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    nomor_kontrak             VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id                   VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    merchant_id               VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    external_id               VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    api_call_id               VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    jumlah                    DECIMAL(20,2) NOT NULL,
    mengurangi_tagihan        DECIMAL(20,2) NOT NULL,
    dikembalikan_ke_konsumen  DECIMAL(20,2) NOT NULL,
    sisa_tagihan              DECIMAL(20,2) NOT NULL,
    alokasi                   TEXT NOT NULL,
    alasan                    VARCHAR(200) NOT NULL,
    tanggal_refund            DATETIME(6) NOT NULL,
    PRIMARY KEY (kode_refund),
    UNIQUE KEY refunds_api_call (api_call_id),
    UNIQUE KEY refunds_external (merchant_id, external_id),
    KEY refunds_contract (nomor_kontrak, tanggal_refund),
    CONSTRAINT refunds_contract_fk FOREIGN KEY (nomor_kontrak) REFERENCES transactions (nomor_kontrak),
    CONSTRAINT refunds_split CHECK (jumlah > 0 AND mengurangi_tagihan >= 0 AND dikembalikan_ke_konsumen >= 0
        AND mengurangi_tagihan + dikembalikan_ke_konsumen = jumlah)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
