//! Plain text tables in the style of the model summary (`│` between
//! columns, `─┼─` rules).

use std::fmt::Write as _;

/// Render `rows` under `headers`; `right[i]` right-aligns column `i`. A rule
/// is drawn under the headers, at the end, and before row `footer` if given.
pub(crate) fn render(
    headers: &[&str],
    rows: &[Vec<String>],
    right: &[bool],
    footer: Option<usize>,
) -> String {
    // Cells may quote names from the file: escaped here, so that widths are
    // measured on what is printed.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| crate::text::sanitize(c).into_owned())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let rule = {
        let mut line = String::new();
        for (i, w) in widths.iter().enumerate() {
            line.push_str(if i == 0 { "" } else { "─┼─" });
            line.extend(std::iter::repeat_n('─', *w));
        }
        line
    };
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str(" │ ");
            }
            // Pad by characters, not bytes (cells may hold `≥`).
            let pad = w.saturating_sub(cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let headers: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    let _ = writeln!(out, "{}", line(&headers));
    let _ = writeln!(out, "{rule}");
    for (i, row) in rows.iter().enumerate() {
        if footer == Some(i) {
            let _ = writeln!(out, "{rule}");
        }
        let _ = writeln!(out, "{}", line(row));
    }
    if footer.is_none() {
        let _ = writeln!(out, "{rule}");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns_by_characters() {
        let t = super::render(
            &["a", "n"],
            &[
                vec!["≥ 1".into(), "5".into()],
                vec!["total".into(), "10".into()],
            ],
            &[false, true],
            Some(1),
        );
        assert_eq!(
            t,
            "a     │  n\n\
             ──────┼───\n\
             ≥ 1   │  5\n\
             ──────┼───\n\
             total │ 10\n"
        );
    }
}
