//! What a refund gives back of each part of an order's price — its taxable value and each
//! tax component — so a credit note can state it exactly.
//!
//! Each refund takes the parts in proportion to what has been refunded in all, counting
//! what earlier refunds took: the shares of one refund add up to its amount, no part ever
//! gives back more than it was, and once the whole order is refunded every part has given
//! back exactly its amount, however the refunds were split.

/// The shares of a refund of `amount` over `parts` (their amounts; they add up to the
/// order's total), given what earlier refunds took of each (`taken`). `amount` is at most
/// what is left of the total.
pub fn refund_shares(parts: &[i64], taken: &[i64], amount: i64) -> Vec<i64> {
    let total: i128 = parts.iter().map(|p| i128::from(*p)).sum();
    if total <= 0 || amount <= 0 {
        return vec![0; parts.len()];
    }
    let before: i128 = taken.iter().map(|t| i128::from(*t)).sum();
    let after = before + i128::from(amount);
    // What each part should have given back once this refund is in, less what it has:
    // whole units first (never below zero, never past what is left of the part), then the
    // rest by largest fraction.
    let mut shares = vec![0i128; parts.len()];
    let mut left = i128::from(amount);
    let mut fractions: Vec<(i128, usize)> = Vec::with_capacity(parts.len());
    let mut order: Vec<usize> = (0..parts.len()).collect();
    let need = |i: usize| i128::from(parts[i]) * after - i128::from(taken[i]) * total;
    order.sort_by(|&a, &b| need(b).cmp(&need(a)).then(a.cmp(&b)));
    for &i in &order {
        let room = i128::from(parts[i] - taken[i]).max(0);
        let whole = (need(i).max(0) / total).min(room).min(left);
        shares[i] = whole;
        left -= whole;
        fractions.push((need(i).max(0) % total, i));
    }
    fractions.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
    while left > 0 {
        let before_pass = left;
        for &(_, i) in &fractions {
            if left == 0 {
                break;
            }
            if i128::from(taken[i]) + shares[i] < i128::from(parts[i]) {
                shares[i] += 1;
                left -= 1;
            }
        }
        if left == before_pass {
            break; // nothing has room: `amount` was more than is left
        }
    }
    shares.into_iter().map(|s| s as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::refund_shares;

    #[test]
    fn a_full_refund_gives_back_every_part() {
        assert_eq!(
            refund_shares(&[9_000, 810, 810], &[0, 0, 0], 10_620),
            vec![9_000, 810, 810]
        );
        assert_eq!(refund_shares(&[100, 0], &[0, 0], 100), vec![100, 0]);
    }

    #[test]
    fn a_partial_refund_takes_each_part_in_proportion() {
        // Half of 9000 + 810 + 810.
        assert_eq!(
            refund_shares(&[9_000, 810, 810], &[0, 0, 0], 5_310),
            vec![4_500, 405, 405]
        );
        // Then the other half, exactly what is left.
        assert_eq!(
            refund_shares(&[9_000, 810, 810], &[4_500, 405, 405], 5_310),
            vec![4_500, 405, 405]
        );
    }

    proptest::proptest! {
        #[test]
        fn refunds_add_up_and_end_exact(
            parts in proptest::collection::vec(0i64..10_000_000, 1..6),
            cuts in proptest::collection::vec(1u32..1000, 1..8),
        ) {
            let total: i64 = parts.iter().sum();
            proptest::prop_assume!(total > 0);
            let mut taken = vec![0i64; parts.len()];
            let mut refunded = 0i64;
            for (n, cut) in cuts.iter().enumerate() {
                let left = total - refunded;
                let amount = if n + 1 == cuts.len() { left } else { (left * i64::from(*cut) / 1000).max(1).min(left) };
                if amount == 0 { break; }
                let shares = refund_shares(&parts, &taken, amount);
                proptest::prop_assert_eq!(shares.iter().sum::<i64>(), amount);
                for (i, s) in shares.iter().enumerate() {
                    proptest::prop_assert!(*s >= 0);
                    taken[i] += s;
                    proptest::prop_assert!(taken[i] <= parts[i]);
                }
                refunded += amount;
            }
            if refunded == total {
                proptest::prop_assert_eq!(&taken, &parts);
            }
        }
    }
}
