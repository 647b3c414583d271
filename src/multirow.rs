//! Multi-row statements: how many rows go in each (`runs`) and their `VALUES` text
//! (`values`). Pure text, below the stores that write with it: a batch's rows take a few
//! statements of a few shapes, each prepared once per connection.

/// The most rows one statement writes (`runs`).
pub const ROWS_MAX: usize = 64;

/// Up to this many rows go in one statement of exactly their number (`runs`).
const ROWS_EXACT: usize = 8;

/// Splits `n` rows into runs for multi-row statements: as many `ROWS_MAX` as fit, then
/// powers of two while more than `ROWS_EXACT` are left, then the rest in one. A statement
/// so comes in at most eleven shapes, each prepared once per connection however the batches
/// fall, and the few rows of one order or one confirmation take one statement.
pub fn runs(n: usize) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    while start < n {
        let left = n - start;
        let size = if left >= ROWS_MAX {
            ROWS_MAX
        } else if left > ROWS_EXACT {
            1 << left.ilog2()
        } else {
            left
        };
        runs.push(start..start + size);
        start += size;
    }
    runs
}

/// The rows of a multi-row `VALUES`: `row` repeated `rows` times, its `?`s numbered on from
/// `$first` (row `i`'s start at `first + i * per_row`); `$N` written in `row` is left as it
/// is, a value every row shares. `row` is a store's own fixed text, never input.
pub fn values(row: &str, rows: usize, first: usize) -> String {
    let mut sql = String::with_capacity((row.len() + 8) * rows);
    let mut n = first;
    for i in 0..rows {
        if i > 0 {
            sql.push_str(", ");
        }
        for c in row.chars() {
            if c == '?' {
                sql.push('$');
                sql.push_str(&n.to_string());
                n += 1;
            } else {
                sql.push(c);
            }
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_cover_every_row_once_in_few_shapes() {
        for n in 0..300 {
            let runs = runs(n);
            let mut next = 0;
            for run in &runs {
                assert_eq!(run.start, next, "{n}: {runs:?}");
                assert!(
                    (run.len().is_power_of_two() || run.len() <= ROWS_EXACT)
                        && run.len() <= ROWS_MAX
                );
                next = run.end;
            }
            assert_eq!(next, n);
        }
        assert_eq!(runs(64 + 37), vec![0..64, 64..96, 96..101]);
        assert_eq!(runs(3), vec![0..3]);
    }

    #[test]
    fn values_number_each_row_on_and_keep_shared_ones() {
        assert_eq!(
            values("(?, 'held', ?, $1)", 3, 2),
            "($2, 'held', $3, $1), ($4, 'held', $5, $1), ($6, 'held', $7, $1)"
        );
        assert_eq!(values("(?)", 1, 1), "($1)");
    }
}
