//! Kubernetes resource quantities (`1Gi`, `1500Mi`, `2G`, `1.5Gi`, `1e9`, `1000000000`)
//! as whole bytes, so sizes written in different units compare correctly.

/// The value of quantity `q` in bytes, rounded up to a whole byte as the API's
/// `Quantity.Value()` does; `None` when `q` is no valid quantity, is negative, or does not
/// fit in a `u128`.
pub fn bytes(q: &str) -> Option<u128> {
    let q = q.trim();
    let unsigned = q.strip_prefix('+').unwrap_or(q);
    if let Some(magnitude) = unsigned.strip_prefix('-') {
        // Only a negative zero is a size.
        return bytes(magnitude).filter(|b| *b == 0);
    }
    let end = unsigned
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(unsigned.len());
    let (number, suffix) = unsigned.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return None;
    }
    let mut mantissa: u128 = 0;
    for d in int.bytes().chain(frac.bytes()) {
        mantissa = mantissa
            .checked_mul(10)?
            .checked_add(u128::from(d - b'0'))?;
    }
    // value = mantissa * 2^binary * 10^decimal / 10^frac.len()
    let (binary, decimal): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        s if s.starts_with(['e', 'E']) => {
            let exp = &s[1..];
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (0, exp.parse().ok()?)
        }
        _ => return None,
    };
    let decimal = decimal.checked_sub(i32::try_from(frac.len()).ok()?)?;
    let mut num = mantissa.checked_mul(1u128.checked_shl(binary)?)?;
    let mut den: u128 = 1;
    if decimal >= 0 {
        num = num.checked_mul(10u128.checked_pow(decimal.unsigned_abs())?)?;
    } else {
        den = 10u128.checked_pow(decimal.unsigned_abs())?;
    }
    Some(num.div_ceil(den))
}

#[cfg(test)]
mod tests {
    use super::bytes;

    const GI: u128 = 1 << 30;

    #[test]
    fn units() {
        assert_eq!(bytes("1Gi"), Some(GI));
        assert_eq!(bytes("1500Mi"), Some(1500 << 20));
        assert_eq!(bytes("2G"), Some(2_000_000_000));
        assert_eq!(bytes("1.5Gi"), Some(3 * GI / 2));
        assert_eq!(bytes("1000000000"), Some(1_000_000_000));
        assert_eq!(bytes("1e9"), Some(1_000_000_000));
        assert_eq!(bytes("1E3"), Some(1000));
        assert_eq!(bytes("2.5e-1"), Some(1));
        assert_eq!(bytes("5Ki"), Some(5120));
        assert_eq!(bytes("1Ti"), Some(1 << 40));
        assert_eq!(bytes("1Ei"), Some(1 << 60));
        assert_eq!(bytes("3k"), Some(3000));
        assert_eq!(bytes("+4M"), Some(4_000_000));
        assert_eq!(bytes(".5Ki"), Some(512));
        assert_eq!(bytes("5."), Some(5));
        assert_eq!(bytes("0"), Some(0));
        assert_eq!(bytes("-0"), Some(0));
    }

    #[test]
    fn rounds_up_like_value() {
        assert_eq!(bytes("1500m"), Some(2));
        assert_eq!(bytes("1m"), Some(1));
        assert_eq!(bytes("1n"), Some(1));
        assert_eq!(bytes("0.1"), Some(1));
        assert_eq!(bytes("1.0000001Gi"), Some(GI + 108));
    }

    #[test]
    fn compares_across_units() {
        assert!(bytes("2Gi") > bytes("2G"));
        assert!(bytes("1.5Gi") > bytes("1500Mi"));
        assert_eq!(bytes("1024Mi"), bytes("1Gi"));
        assert_eq!(bytes("1073741824"), bytes("1Gi"));
        assert_eq!(bytes("1.0Gi"), bytes("1Gi"));
    }

    #[test]
    fn rejects_nonsense() {
        for q in [
            "", "Gi", "1GiB", "1gi", "1.2.3", "abc", "1 Gi", "-1Gi", "1e", "1e+", "1ee3", "..",
            "1e99", "1e-99",
        ] {
            assert_eq!(bytes(q), None, "{q:?}");
        }
        assert_eq!(bytes("99999999999999999999999999999999999999999Ei"), None);
    }
}
