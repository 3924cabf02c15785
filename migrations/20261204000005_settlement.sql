-- The settlement report (SPEC §14) reads one Jakarta day of each kind of approved call,
-- ordered by (instant, api call id): a range scan on these keys, not a table scan.
-- transactions and refunds had no key led by their instant; bills had one led by user_id.
ALTER TABLE transactions ADD KEY transactions_accepted (tanggal_kontrak, api_call_id);
ALTER TABLE bills ADD KEY bills_accepted (tanggal_bayar, api_call_id);
ALTER TABLE refunds ADD KEY refunds_accepted (tanggal_refund, api_call_id);
