//! What every text the checker prints is laid out with: columns, outcome marks and
//! words, percentages and p-values.

use checker_core::verdict::Outcome;

/// The mark shown before an outcome: a check, a cross or a question mark.
pub fn mark(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "✔",
        Outcome::Fail => "✘",
        Outcome::Inconclusive => "?",
    }
}

/// The outcome in capitals: PASS, FAIL, INCONCLUSIVE.
pub fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "PASS",
        Outcome::Fail => "FAIL",
        Outcome::Inconclusive => "INCONCLUSIVE",
    }
}

/// A p-value to three decimals, or `p < 0.001`.
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_owned()
    } else {
        format!("p = {p:.3}")
    }
}

/// A fraction as a percentage with one decimal: `90.1%`.
pub fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Lays out rows as left-aligned columns two spaces apart, without trailing spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[c].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_by_characters_not_bytes() {
        let t = table(&[
            vec!["✔ PASS".into(), "x".into()],
            vec!["INCONCLUSIVE".into(), "y".into()],
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].chars().count(), lines[1].chars().count());
    }
}
