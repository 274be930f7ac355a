//! Aligned plain-text tables, the default output.
//!
//! Columns are padded to the widest cell, measured in terminal columns so
//! CJK text (two columns per character) lines up, and separated by three
//! spaces. The last column is not padded, so lines carry no trailing
//! whitespace. Empty cells print as `-`, and line breaks inside a cell
//! become spaces, so every row stays one line for `grep` and `awk`.

use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

/// The text of an empty cell.
pub const EMPTY: &str = "-";

const GAP: &str = "   ";

/// A table of rows, with an optional header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is `header`.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Self {
        let mut table = Self::default();
        table.row(header);
        table
    }

    /// A table without a header, e.g. for `key: value` details.
    pub fn headless() -> Self {
        Self::default()
    }

    /// Appends a row.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows
            .push(cells.into_iter().map(|c| clean(c.into())).collect());
    }

    /// Writes the table.
    pub fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.width());
            }
        }
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.push_str(&" ".repeat(widths[i] - cell.width()));
                    line.push_str(GAP);
                }
            }
            writeln!(w, "{}", line.trim_end())?;
        }
        Ok(())
    }

    /// The rendered table as a string.
    pub fn to_text(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.render(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn clean(cell: String) -> String {
    if cell.is_empty() {
        EMPTY.to_owned()
    } else if cell.contains(['\n', '\r', '\t']) {
        cell.replace(['\n', '\r', '\t'], " ")
    } else {
        cell
    }
}

/// Joins a list for one cell: `a,b`, or empty (shown as `-`).
pub fn list(items: &[String]) -> String {
    items.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut t = Table::new(["NAME", "PHASE", "FOUNDATION"]);
        t.row(["web-1", "Pending", ""]);
        t.row(["database-primary", "Ready", "kunpeng-1"]);
        assert_eq!(
            t.to_text(),
            "NAME               PHASE     FOUNDATION\n\
             web-1              Pending   -\n\
             database-primary   Ready     kunpeng-1\n"
        );
    }

    #[test]
    fn wide_characters_count_as_two_columns() {
        let mut t = Table::new(["IMAGE", "DESCRIPTION"]);
        t.row(["kylin-v10", "银河麒麟"]);
        t.row(["麒麟", "x"]);
        let text = t.to_text();
        let lines: Vec<_> = text.lines().collect();
        // "麒麟" is four columns wide: five spaces pad it to the nine of
        // "kylin-v10", then the three-space gap.
        assert_eq!(lines[2], "麒麟        x");
        assert_eq!(lines[1], "kylin-v10   银河麒麟");
    }

    #[test]
    fn no_trailing_whitespace_and_breaks_become_spaces() {
        let mut t = Table::headless();
        t.row(["Message:", "line one\nline two"]);
        t.row(["Phase:", "Ready"]);
        for line in t.to_text().lines() {
            assert_eq!(line, line.trim_end());
        }
        assert!(t.to_text().contains("line one line two"));
        assert!(t.to_text().starts_with("Message:   line one"));
    }

    #[test]
    fn short_rows_and_empty_tables_render() {
        let mut t = Table::new(["A", "B", "C"]);
        t.row(["x"]);
        assert_eq!(t.to_text(), "A   B   C\nx\n");
        assert_eq!(Table::headless().to_text(), "");
    }
}
