//! `xyzctl report settlement`: the settlement CSV read straight from MySQL with the ingress's
//! own query and writer (`shared::db::settlement`), so finance needs database read access,
//! not an API key, and the file is byte-for-byte what the API streams.

use anyhow::Context;
use futures_util::StreamExt;
use shared::db::settlement::{self, CSV_HEADER, Day};
use std::io::Write;

pub async fn settlement(
    database_url: &shared::nodes::Nodes,
    date: chrono::NaiveDate,
    merchant: Option<&str>,
) -> anyhow::Result<()> {
    let pool = shared::db::connect(database_url, 1).await?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    out.write_all(CSV_HEADER.as_bytes())?;
    let mut rows = settlement::stream(&pool, Day::jakarta(date), merchant);
    let mut line = String::new();
    while let Some(row) = rows.next().await {
        line.clear();
        settlement::write_csv_record(&mut line, &row.context("reading the day's rows")?);
        out.write_all(line.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
